"""Follow one job's events losslessly: its batch's event log from the job's first event, then live.

The reader follows the log (a Redis Stream) alone, with ``XREAD BLOCK`` from the last entry it
delivered, and keeps the job's own events. There is no hand-over between a backlog and a live feed,
so nothing can fall in between or arrive twice, and after a dropped connection it simply reads on
from the same entry. A sequence number that jumps means the log was trimmed (or an event was lost):
the reader says so with a ``Gap`` rather than let a short answer pass for a whole one.

An ended job's events leave the log (``common.live_log``): a job that has ended when its events
turn out to be gone is shown from its stored result, which holds its whole answer, not as a gap.
A live job's events stay from the first one it may need: a job queued again by ``askq retry`` after
its earlier events left is followed from its ``retry`` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Self

from redis.asyncio import Redis

from common import keys, record
from common.errors import NotFoundError
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.replay import Entry, entry_events
from common.sources import Source
from common.status import JobState
from common.stored_jobs import read_job
from common.usage import CUT_AT_MAX_TOKENS, Usage
from producer.job_log import log_fields, where_to_follow_from
from producer.log_reader import At, LogReader, RedisLogReader, id_text
from producer.reconnect import each_item, follow_steps
from producer.results import Result, result_from_record

BLOCK_MS = 1000
"""Longest silent wait on the log before the stored state is checked (a queued job, a lost end)."""
READ_COUNT = 100
"""Entries per read; each holds one flush of a worker, so events of many jobs."""
PROVIDER_WAIT_NOTICE_S = 1.0
"""Silence after an attempt's start before tail says it waits for the provider: a server with every
slot busy sends no byte to the requests it queues, and a replay of an ended job never waits this long."""


@dataclass(frozen=True)
class Waiting:
    """The job has not started yet."""

    job_id: str


@dataclass(frozen=True)
class ProviderWait:
    """The job's attempt started a while ago and no text came yet: the provider has not answered."""

    job_id: str
    attempt: int


@dataclass(frozen=True)
class Gap:
    """Events ``first_seq``..``last_seq`` are not in the event log any more (trimmed, or lost)."""

    job_id: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class Finished:
    """The job ended but its log holds no final event (expired or never written): its stored result."""

    job_id: str
    state: JobState
    answer: str
    error: str
    attempts: int
    usage: Usage | None
    finish_reason: str | None = None
    sources: list[Source] | None = None
    """The knowledge chunks in its prompt, best first; None for a job without knowledge."""

    @property
    def cut_at(self) -> int | None:
        """For an answer cut at max_tokens, the cap when the provider's count tells it (an answer
        that reached the cap is that many tokens long), else 0; None for an answer not cut."""
        if self.finish_reason != CUT_AT_MAX_TOKENS:
            return None
        return self.usage.completion_tokens if self.usage and not self.usage.estimated else 0

    @classmethod
    def from_result(cls, result: Result) -> Self:
        known = result.status in {state.value for state in JobState}
        return cls(
            job_id=result.job_id,
            state=JobState(result.status) if known else JobState.FAILED,
            answer=result.answer or "",
            error=result.error or "",
            attempts=result.attempts,
            usage=Usage.model_validate(result.usage) if result.usage else None,
            finish_reason=result.finish_reason,
            sources=result.sources,
        )


TailItem = StreamEvent | Waiting | ProviderWait | Gap | Finished | Reconnecting | At


@dataclass(frozen=True)
class Resume:
    """Where a reader that was following the job stopped: its events come after entry ``after``, and
    those up to ``seq`` were delivered."""

    after: str
    seq: int


class LogCursor:
    """Where a reader stands in the event log, for one job: drops repeats, reports gaps."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.last_id: bytes | str = "0-0"
        self.last_seq = 0
        self.ended = False

    def accept(self, entries: list[Entry]) -> list[StreamEvent | Gap]:
        items: list[StreamEvent | Gap] = []
        for entry_id, fields in entries:
            self.last_id = entry_id
            items += self.take(entry_events(fields, self.job_id))
        return items

    def take(self, events: list[StreamEvent]) -> list[StreamEvent | Gap]:
        """The job's events from one entry, repeats dropped and gaps named.

        A reader whose first event is a ``retry`` starts there, with no gap: what came before it is
        void (an attempt's or an ended run's text), never part of the answer.
        """
        items: list[StreamEvent | Gap] = []
        for event in events:
            if event.seq <= self.last_seq:
                continue
            if event.seq > self.last_seq + 1 and not (self.last_seq == 0 and event.type is EventType.RETRY):
                items.append(Gap(self.job_id, self.last_seq + 1, event.seq - 1))
            self.last_seq = event.seq
            # Not final for good: `askq retry` may log a re-run after an end; the latest one counts.
            self.ended = event.type.is_final
            items.append(event)
        return items


async def follow_job_reads(
    redis: Redis,
    job_id: str,
    *,
    block_ms: int = BLOCK_MS,
    reader: LogReader | None = None,
    resume: Resume | None = None,
    positions: bool = False,
) -> AsyncIterator[list[TailItem]]:
    """Yield every event of the job from its first (or after ``resume``), then live, until it ends;
    reconnect on drops. ``reader``: how the log is read (default: straight from Redis);
    ``positions``: an ``At`` before each read's items, for readers that resume. What each read
    brings comes in one list (a server writes it in one send); ``follow_job`` yields them one by one."""
    state = await job_state(redis, job_id)
    if resume is None:
        if state is JobState.QUEUED:
            yield [Waiting(job_id)]
        log_key, after = await where_to_follow_from(redis, job_id, state)
        if after is None:
            yield [await stored_end(redis, job_id)]
            return
        resume = Resume(after, 0)
    else:
        log_key = keys.event_feed(job_id, (await log_fields(redis, job_id))[0])[0]
    follower = _JobFollower(redis, job_id, block_ms, state, log_key, reader or RedisLogReader(redis))
    follower.start_after(resume, positions=positions)
    async for items in follow_steps(follower):
        yield items


follow_job = each_item(follow_job_reads)


class _JobFollower:
    def __init__(
        self, redis: Redis, job_id: str, block_ms: int, state: JobState, log_key: str, reader: LogReader
    ) -> None:
        self._redis = redis
        self._reader = reader
        self._positions = False
        self._job_id = job_id
        self._log = log_key
        self._block_ms = block_ms
        self._cursor = LogCursor(job_id)
        self._said_waiting = state is JobState.QUEUED
        # A finished job's log is read without waiting: there is nothing more to come.
        self._terminal = state.is_terminal
        self._silent_start: tuple[float, int] | None = None
        """When this reader saw the current attempt start with no text since, and its number."""
        self.ended = False

    def start_after(self, resume: Resume, *, positions: bool) -> None:
        self._cursor.last_id = resume.after
        self._cursor.last_seq = resume.seq
        self._positions = positions

    async def step(self) -> list[TailItem]:
        block = None if self._terminal else self._block_ms
        read_from = self._cursor.last_id
        entries = await self._reader.read(self._log, read_from, READ_COUNT, block)
        if entries:
            items: list[TailItem] = [*self._cursor.accept(entries)]
            items += self._provider_wait(items)
            if (
                any(isinstance(item, Gap) for item in items)
                and (await job_state(self._redis, self._job_id)).is_terminal
            ):
                # Its events left the log as it ended (before this reader got to them): its stored
                # result holds the whole answer.
                self.ended = True
                return [await stored_end(self._redis, self._job_id)]
            if self._cursor.ended:
                # An end logged before `askq retry` re-queued the job is not the job's end: the
                # record says which (retry writes the state and its log event in one call).
                self._terminal = (await job_state(self._redis, self._job_id)).is_terminal
                self.ended = self._terminal
            if self._positions and items:
                # Every item of this read comes from entries after the one it started from.
                items.insert(0, At(id_text(read_from)))
            return items
        if self._terminal:
            # Read to the end of the log and found no final event: the stored result stands in.
            self.ended = True
            return [await stored_end(self._redis, self._job_id)]
        state = await job_state(self._redis, self._job_id)
        # Its final event follows the stored result by a moment: read the log once more first.
        self._terminal = state.is_terminal
        if state is JobState.QUEUED and not self._said_waiting:
            self._said_waiting = True
            return [Waiting(self._job_id)]
        return self._provider_wait([])

    def _provider_wait(self, items: list[TailItem]) -> list[TailItem]:
        """A ``ProviderWait`` once an attempt's start has gone unanswered for a while, once an attempt."""
        for item in items:
            if isinstance(item, StreamEvent) and item.type is EventType.START and item.part is None:
                self._silent_start = (time.monotonic(), item.attempt)
            elif isinstance(item, StreamEvent) and item.type is not EventType.START:
                self._silent_start = None  # text, or the attempt's end
        if self._silent_start is None or time.monotonic() - self._silent_start[0] < PROVIDER_WAIT_NOTICE_S:
            return []
        attempt = self._silent_start[1]
        self._silent_start = None
        return [ProviderWait(self._job_id, attempt)]


async def job_state(redis: Redis, job_id: str) -> JobState:
    value = await redis.hget(keys.job_record(job_id), record.STATE)  # type: ignore[misc]  # redis-py types sync and async alike
    if value is None:
        raise NotFoundError(f"unknown job {job_id!r} (job ids look like BATCH:ITEM; see `askq status BATCH`)")
    return JobState(value.decode())


async def stored_end(redis: Redis, job_id: str) -> Finished:
    return Finished.from_result(result_from_record(job_id, await read_job(redis, job_id)))
