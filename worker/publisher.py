"""Publishes a job's stream events without ever making the provider's read loop wait on Redis.

The read loop calls ``delta`` and ``emit``, which only append to a buffer. A background task sends
what has gathered in one pipelined round trip: at once for an attempt's first delta and for every
other event kind, otherwise at most every ``flush_interval_ms`` or when ``flush_chars`` are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import StreamConfig
from common.events import EventType, StreamEvent

log = structlog.get_logger(__name__)


class EventPublisher:
    def __init__(self, redis: Redis, job_id: str, config: StreamConfig) -> None:
        self._redis = redis
        self._job_id = job_id
        self._channel = keys.job_events_channel(job_id)
        self._interval_s = config.flush_interval_ms / 1000
        self._flush_chars = config.flush_chars
        self._seq = 0
        self._attempt = 1
        self._pending: list[StreamEvent] = []
        self._delta_parts: list[str] = []
        self._delta_chars = 0
        self._first_delta_sent = False
        self._last_flush = 0.0
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"publish {job_id}")

    def emit(self, kind: EventType, attempt: int, **fields: Any) -> None:
        """Queue a non-delta event; it is sent at once, after any text buffered before it."""
        self._seal_delta()
        if kind is EventType.START:
            self._attempt = attempt
            self._first_delta_sent = False
        self._pending.append(self._event(kind, attempt, **fields))
        self._poke(urgent=True)

    def delta(self, text: str) -> None:
        self._delta_parts.append(text)
        self._delta_chars += len(text)
        urgent = not self._first_delta_sent or self._delta_chars >= self._flush_chars
        self._first_delta_sent = True
        self._poke(urgent=urgent)

    async def aclose(self) -> None:
        """Send everything still buffered, then stop the background task."""
        self._closing = True
        self._seal_delta()
        self._poke(urgent=True)
        await self._task

    def _event(self, kind: EventType, attempt: int, **fields: Any) -> StreamEvent:
        self._seq += 1
        return StreamEvent(
            type=kind, job_id=self._job_id, seq=self._seq, attempt=attempt, ts=time.time(), **fields
        )

    def _seal_delta(self) -> None:
        if self._delta_parts:
            text = "".join(self._delta_parts)
            self._delta_parts.clear()
            self._delta_chars = 0
            self._pending.append(self._event(EventType.DELTA, self._attempt, text=text))

    def _poke(self, *, urgent: bool) -> None:
        self._wake.set()
        if urgent:
            self._urgent.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent.is_set():
                # Coalesce: wait out the flush interval unless something urgent arrives first.
                remaining = self._last_flush + self._interval_s - time.monotonic()
                if remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), remaining)
            self._wake.clear()
            self._urgent.clear()
            self._seal_delta()
            events, self._pending = self._pending, []
            if events:
                await self._send(events)
            self._last_flush = time.monotonic()
            if self._closing and not self._pending and not self._delta_parts:
                return

    async def _send(self, events: list[StreamEvent]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(self._channel, event.to_json())
                await pipe.execute()
        except RedisError as exc:
            # Live events are a view of the job, not its result: losing some must not fail the job.
            log.warning("publish failed", job_id=self._job_id, error=str(exc), events=len(events))
