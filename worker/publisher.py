"""Publishes a job's stream events without ever making the provider's read loop wait on Redis.

The read loop calls ``delta`` and ``emit``, which only append to a buffer. A background task sends
what has gathered in one pipelined round trip: at once for an attempt's first delta and for every
other event kind, otherwise at most every ``flush_interval_ms`` or when ``flush_chars`` are waiting.

Each event goes to the job's replay log (a Redis Stream, so a late reader misses nothing) and to
its pub/sub channel, with the same JSON. Starts and ends also go to the batch's log, which
``askq tail --batch`` follows. A scheduled run has no batch, and several model calls at once: its
text is buffered per ``part``, so each call's deltas stay whole and in order.

Sequence numbers are given at send time, continuing the replay log, so they stay contiguous when
a job runs again after a worker was lost.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from common import keys
from common.config import StreamConfig
from common.events import EventType, StreamEvent
from common.replay import last_logged_event, log_entry_id

log = structlog.get_logger(__name__)

BATCH_LOG_TYPES = frozenset({EventType.START, *(kind for kind in EventType if kind.is_final)})
INTERRUPTED = "the previous run of this job stopped mid-way (its worker was lost); starting again"


@dataclass
class _Pending:
    kind: EventType
    attempt: int
    ts: float
    fields: dict[str, Any] = field(default_factory=dict)


class EventPublisher:
    def __init__(
        self, redis: Redis, job_id: str, batch: str | None, config: StreamConfig, ttl_s: int
    ) -> None:
        self._redis = redis
        self._job_id = job_id
        self._channel = keys.job_events_channel(job_id)
        self._log = keys.job_log(job_id)
        self._batch_log = keys.batch_log(batch) if batch is not None else None
        self._config = config
        self._ttl_s = ttl_s
        self._interval_s = config.flush_interval_ms / 1000
        self._seq: int | None = None  # read from the replay log by the first flush
        self._attempt = 1
        self._part_attempts: dict[str, int] = {}
        self._pending: list[_Pending] = []
        self._unsent: list[StreamEvent] = []
        self._deltas: dict[str | None, list[str]] = {}
        self._delta_chars = 0
        self._first_delta_sent = False
        self._last_flush = 0.0
        self._due = asyncio.Event()
        """Set when a flush is due: something urgent, or the coalescing timer ran out."""
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"publish {job_id}")

    @property
    def attempt(self) -> int:
        """The attempt of the latest ``start``."""
        return self._attempt

    def continue_from(self, last: StreamEvent | None) -> None:
        """Number on from ``last``, the job's last logged event, read by the caller; else the first
        flush reads it."""
        self._pending[:0] = self._resume(last)

    def emit(self, kind: EventType, attempt: int, **fields: Any) -> None:
        """Queue a non-delta event; it is sent at once, after any text buffered before it."""
        self._seal_delta()
        if kind is EventType.START:
            if fields.get("part") is None:
                self._attempt = attempt
            else:
                self._part_attempts[fields["part"]] = attempt
            self._first_delta_sent = False
        self._pending.append(_Pending(kind, attempt, time.time(), fields))
        self._poke(urgent=True)

    def delta(self, text: str, part: str | None = None) -> None:
        buffered = self._deltas.get(part)
        if buffered is None:
            self._deltas[part] = [text]
        else:
            buffered.append(text)
        self._delta_chars += len(text)
        urgent = not self._first_delta_sent or self._delta_chars >= self._config.flush_chars
        self._first_delta_sent = True
        self._poke(urgent=urgent)

    async def aclose(self) -> None:
        """Send everything still buffered, then stop the background task."""
        self._closing = True
        self._seal_delta()
        self._poke(urgent=True)
        await self._task

    def _seal_delta(self) -> None:
        if not self._deltas:
            return
        now = time.time()
        for part, texts in self._deltas.items():
            if part is None:
                self._pending.append(_Pending(EventType.DELTA, self._attempt, now, {"text": "".join(texts)}))
            else:
                attempt = self._part_attempts.get(part, 1)
                fields = {"text": "".join(texts), "part": part}
                self._pending.append(_Pending(EventType.DELTA, attempt, now, fields))
        self._deltas = {}
        self._delta_chars = 0

    def _poke(self, *, urgent: bool) -> None:
        # A delta only arms a timer (once per flush interval): waking the task for every token
        # cost more than the token.
        if urgent or self._due.is_set():
            self._flush_now()
        elif self._timer is None:
            delay = self._last_flush + self._interval_s - time.monotonic()
            if delay <= 0:
                self._flush_now()
            else:
                self._timer = asyncio.get_running_loop().call_later(delay, self._flush_now)

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.set()

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            # The interval runs from the flush's start: what arrives during it waits out the rest.
            self._last_flush = time.monotonic()
            self._seal_delta()
            pending, self._pending = self._pending, []
            if pending or self._unsent:
                await self._flush(pending)
            if self._closing and not self._pending and not self._deltas:
                return

    async def _flush(self, pending: list[_Pending]) -> None:
        try:
            if self._seq is None:
                pending = await self._continue_log(pending)
            # Numbered once: events resent after an outage keep their seq, so readers can drop repeats.
            self._unsent += self._number(pending)
            pending = []
            await self._send(self._unsent)
            self._unsent = []
        except RedisError as exc:
            # Events are a view of the job, not its result: a Redis outage must not fail the job.
            # They are tried again with the next flush; a reader finding a seq missing says so.
            if self._closing:
                lost = len(self._unsent) + len(pending)
                log.warning("events lost", job_id=self._job_id, error=str(exc), events=lost)
            else:
                log.warning("publish failed; will retry", job_id=self._job_id, error=str(exc))
                self._pending[:0] = pending

    async def _continue_log(self, pending: list[_Pending]) -> list[_Pending]:
        return [*self._resume(await last_logged_event(self._redis, self._job_id)), *pending]

    def _resume(self, last: StreamEvent | None) -> list[_Pending]:
        self._seq = last.seq if last is not None else 0
        if last is not None and last.type in (EventType.START, EventType.DELTA):
            # A run that streamed and never ended: tell readers its text is void.
            return [_Pending(EventType.RETRY, last.attempt, time.time(), {"error": INTERRUPTED})]
        return []

    def _number(self, pending: list[_Pending]) -> list[StreamEvent]:
        assert self._seq is not None
        events = []
        for item in pending:
            self._seq += 1
            events.append(
                StreamEvent(
                    type=item.kind,
                    job_id=self._job_id,
                    seq=self._seq,
                    attempt=item.attempt,
                    ts=item.ts,
                    **item.fields,
                )
            )
        return events

    async def _send(self, events: list[StreamEvent]) -> None:
        starts_or_ends = False
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                data = event.to_json()
                entry: dict[FieldT, EncodableT] = {keys.LOG_FIELD: data}
                # The entry id is the seq: an event resent after a lost reply cannot be logged twice.
                pipe.xadd(
                    self._log,
                    entry,
                    id=log_entry_id(event.seq),
                    maxlen=self._config.job_log_max_events,
                    approximate=True,
                )
                pipe.publish(self._channel, data)
                if event.type in BATCH_LOG_TYPES:
                    starts_or_ends = True
                    if self._batch_log is not None:
                        pipe.xadd(
                            self._batch_log, entry, maxlen=self._config.batch_log_max_events, approximate=True
                        )
            if starts_or_ends:
                # Starts and ends only: the logs then expire with the result, for a few commands a job.
                pipe.expire(self._log, self._ttl_s)
                if self._batch_log is not None:
                    pipe.expire(self._batch_log, self._ttl_s)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and not _already_logged(reply):
                raise reply


def _already_logged(error: Exception) -> bool:
    return isinstance(error, ResponseError) and "equal or smaller" in str(error)
