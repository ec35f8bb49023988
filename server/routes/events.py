"""``/api/jobs/{job_id}/events`` and ``/api/batches/{batch}/events``: live events as Server-Sent Events.

What ``askq tail`` follows, with its guarantee: from the first event whenever the client joins, then
live, nothing lost and nothing repeated, across reconnects too (``Last-Event-ID``; see
``server.events.cursors``). The streams read the logs through the server's one hub.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from common import keys, record
from common.stored_jobs import read_job
from producer.batches import unknown_batch
from producer.job_status import job_status
from server.events.cursors import END, batch_resume, ended_skipped, job_resume
from server.events.hub import LiveHub
from server.events.reader import HubReader
from server.events.sse import EventStreamResponse
from server.events.streams import batch_events, job_events
from server.state import RedisDep, server_state

router = APIRouter(tags=["events"])

KEEPALIVE_S = 15
"""A comment line this often on a quiet stream: proxies and load balancers keep it open."""
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Not cached, and not held back by a buffering proxy (nginx reads X-Accel-Buffering)."""
HUB = "live_hub"
RECONNECT_MS = 1000
"""Sent first as the stream's ``retry:``: a browser whose connection dropped comes back after a second,
not after its own default (3 s in Chromium)."""

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


@router.get("/api/jobs/{job_id:path}/events", response_model=None)
async def job_stream(
    job_id: str, request: Request, redis: RedisDep, last_event_id: LastEventId = None
) -> Response:
    """The job's events from its first (or after ``Last-Event-ID``), live, until it ends."""
    await job_status(redis, job_id)  # 404 naming the unknown batch or item, before any stream
    if last_event_id == END:
        return Response(status_code=204)
    resume = job_resume(last_event_id) if last_event_id else None
    batch = (await read_job(redis, job_id)).get(record.BATCH) or None
    reader = _reader(request, redis, [keys.event_feed(job_id, batch)], job_id=job_id)
    return _respond(request, job_events(redis, job_id, reader, resume), reader)


@router.get("/api/batches/{batch}/events", response_model=None)
async def batch_stream(
    batch: str,
    request: Request,
    redis: RedisDep,
    last_event_id: LastEventId = None,
    follow: Annotated[bool, Query(description="go on after the batch is done")] = False,
    skip_ended: Annotated[bool, Query(description="leave out jobs ended before the stream began")] = False,
) -> Response:
    """Progress, every job's events and ends, until the batch is done (with ``follow``: for good).
    With ``skip_ended``, from the jobs running now on, with no listing of those ended before."""
    if not await redis.exists(keys.batch_record(batch)):
        raise await unknown_batch(redis, batch)
    if last_event_id == END and not follow:
        return Response(status_code=204)
    resume = batch_resume(last_event_id) if last_event_id and last_event_id != END else None
    skip = await ended_skipped(redis, batch) if resume is None and skip_ended else None
    reader = _reader(request, redis, [(keys.batch_log(batch), keys.batch_events_channel(batch))])
    return _respond(request, batch_events(redis, batch, reader, resume, keep_going=follow, skip=skip), reader)


def _reader(
    request: Request, redis: Redis, feeds: list[tuple[str, str]], *, job_id: str | None = None
) -> HubReader:
    extras = server_state(request).extras
    hub = extras.get(HUB)
    if hub is None:
        hub = extras[HUB] = LiveHub(redis)  # closed by the app's lifespan (its aclose)
    return HubReader(hub, redis, dict(feeds), job_id=job_id)


def _respond(request: Request, frames: AsyncGenerator[bytes, None], reader: HubReader) -> EventStreamResponse:
    return EventStreamResponse(
        _reconnect_delay_first(frames),
        headers=HEADERS,
        keepalive_s=KEEPALIVE_S,
        stopping=server_state(request).stopping,
        on_close=reader.close,  # the client left or the stream ended: its queue leaves the hub
    )


async def _reconnect_delay_first(frames: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The stream's ``retry:`` before its events: no data, so it dispatches no event."""
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    try:
        async for data in frames:
            yield data
    finally:
        await frames.aclose()
