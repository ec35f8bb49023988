"""A job's and a batch's live events as SSE: what ``askq tail`` follows, each item with its place.

The followers are ``producer.tail`` and ``producer.batch_tail``, read through the server's hub; this
module only says how their items go out: a log event as its own type with the event's JSON; the
followers' own items as ``result`` (a job's stored end), ``gap``, ``progress``, ``unseen``; notices
that hold no data (waiting, reconnecting) as comment lines; and ``end`` when the stream is over.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis

from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from producer.batch_tail import BatchResume, JobEnded, Listed, Progress, follow_batch
from producer.log_reader import At, LogReader
from producer.tail import Finished, Gap, ProviderWait, Resume, Waiting, follow_job
from producer.tail_json import item_json
from server.events.cursors import END, event_cursor, item_cursor, job_cursor
from server.events.sse import comment, frame

_ENDS = {EventType.DONE: "succeeded", EventType.FAILED: "failed", EventType.CANCELLED: "cancelled"}
"""A final event's job state, as ``result`` and ``GET /api/jobs/{id}`` name it."""


def _event(kind: str, data: dict[str, Any] | str, cursor: str | None = None) -> bytes:
    return frame(kind, data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), cursor)


def _notice(item: object) -> bytes | None:
    """The followers' notices as comment lines: for a person at ``curl -N``, ignored by programs."""
    if isinstance(item, Waiting):
        return comment("queued: waiting for a worker")
    if isinstance(item, ProviderWait):
        return comment(f"attempt {item.attempt}: waiting for the provider's first token")
    if isinstance(item, Reconnecting):
        return comment(f"lost Redis; reconnecting in {item.retry_in_s:.1f} s")
    return None


async def job_events(
    redis: Redis, job_id: str, reader: LogReader, resume: Resume | None
) -> AsyncGenerator[bytes, None]:
    """The job's events from its first (or after ``resume``) until it ends, then ``end``."""
    after = resume.after if resume else "0-0"
    state: str | None = None
    async for item in follow_job(redis, job_id, reader=reader, resume=resume, positions=True):
        if isinstance(item, At):
            after = item.after
        elif isinstance(item, StreamEvent):
            state = _ENDS.get(item.type)
            yield _event(item.type.value, item.to_json(), job_cursor(after, item.seq))
        elif isinstance(item, Gap):
            yield _event("gap", item_json(item), job_cursor(after, item.last_seq))
        elif isinstance(item, Finished):
            state = item.state.value
            yield _event("result", item_json(item), END)
        elif (notice := _notice(item)) is not None:
            yield notice
    yield _event("end", {"job_id": job_id, "state": state}, END)


async def batch_events(
    redis: Redis, batch: str, reader: LogReader, resume: BatchResume | None, *, keep_going: bool
) -> AsyncGenerator[bytes, None]:
    """Progress, every job's events and every job's end, until the batch is done (or for good)."""
    place: str | None = None
    after_event = False
    sent_progress: dict[str, Any] | None = None
    items = follow_batch(
        redis, batch, follow=True, reader=reader, positions=True, resume=resume, until_done=not keep_going
    )
    async for item in items:
        if isinstance(item, At):
            place, after_event = event_cursor(item.after, item.index or 0), True
        elif isinstance(item, Listed):
            place, after_event = item_cursor(item.index, final=item.final), False
        elif isinstance(item, StreamEvent):
            yield _event(item.type.value, item.to_json(), place)
        elif isinstance(item, JobEnded):
            # Right after its final event (its place with '+'), or in a listing of stored ends.
            cursor = f"{place}+" if after_event else place
            yield _event("result", item_json(item), cursor)
        elif isinstance(item, Progress):
            progress = item.status.to_json()
            if progress != sent_progress:  # the counters are re-read often; only changes go out
                sent_progress = progress
                yield _event("progress", progress)
        elif isinstance(item, Gap):
            yield _event("gap", item_json(item), place)
        elif (notice := _notice(item)) is not None:
            yield notice
        else:  # Unseen: ends the counters count that no record is left for
            yield _event("unseen", item_json(item))
    yield _event("end", {"batch": batch, "done": bool(sent_progress and sent_progress["done"])}, END)
