"""Follow a whole batch: its progress, each job's end with the answer, and optionally every job's text.

The batch's event log (a Redis Stream) says which jobs run and which ended; the batch's counters
give the progress. With ``follow``, each running job's events in the same log go through a
``LogCursor``, so their text is as lossless as a single ``askq tail``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from common import keys
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.replay import entry_events
from common.stored_jobs import read_jobs
from producer.batches import BatchStatus, batch_status
from producer.reconnect import follow_steps
from producer.results import result_from_record
from producer.tail import READ_COUNT, Finished, Gap, LogCursor

BLOCK_MS = 250
"""Longest wait on the logs; the progress is re-read at least this often."""
END_GRACE_S = 2.0
"""Once every job has ended, how long to wait for end events still in flight."""


@dataclass(frozen=True)
class Progress:
    status: BatchStatus


class JobEnded(Finished):
    """A job of the batch ended: its stored result."""


@dataclass(frozen=True)
class Unseen:
    """Jobs that ended before the batch log's oldest entry (it was trimmed): ``askq results`` has them."""

    count: int


BatchItem = Progress | JobEnded | StreamEvent | Gap | Unseen | Reconnecting


async def follow_batch(
    redis: Redis, batch: str, *, follow: bool, block_ms: int = BLOCK_MS
) -> AsyncIterator[BatchItem]:
    """Yield progress, ended jobs and (with ``follow``) every running job's events until the batch ends."""
    follower = _BatchFollower(redis, batch, follow, block_ms)
    yield Progress(await follower.read_progress())
    async for item in follow_steps(follower):
        yield item


class _BatchFollower:
    def __init__(self, redis: Redis, batch: str, follow: bool, block_ms: int) -> None:
        self._redis = redis
        self._batch = batch
        self._follow = follow
        self._block_ms = block_ms
        self._log = keys.batch_log(batch)
        self._log_last_id: bytes | str = "0-0"
        self._running: dict[str, LogCursor] = {}
        self._ended_jobs: set[str] = set()
        self._all_ended_at: float | None = None
        self._progress_read_at = 0.0
        self.ended = False

    async def read_progress(self) -> BatchStatus:
        self._progress_read_at = time.monotonic()
        return await batch_status(self._redis, self._batch, with_job_ids=False, with_latencies=False)

    async def step(self) -> list[BatchItem]:
        streams: dict[KeyT, StreamIdT] = {self._log: self._log_last_id}
        reply = await self._redis.xread(streams, count=READ_COUNT, block=self._block_ms)
        items: list[BatchItem] = []
        ended: list[str] = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self._log_last_id = entry_id
                for event in entry_events(fields, deltas=self._follow):
                    items += self._take(event, ended)
        items += await self._ended(ended)
        if reply and not ended and time.monotonic() - self._progress_read_at < self._block_ms / 1000:
            # Only text arrived: the counters cannot have moved to an end; spare a read per chunk.
            return items
        status = await self.read_progress()
        items.append(Progress(status))
        self._check_end(status, quiet=not reply)
        if self.ended and len(self._ended_jobs) < status.finished:
            items.append(Unseen(status.finished - len(self._ended_jobs)))
        return items

    def _take(self, event: StreamEvent, ended: list[str]) -> list[StreamEvent | Gap]:
        """One event of the log: a followed job's text, and ``ended`` gains the jobs it ends."""
        if event.type is EventType.START:
            self._ended_jobs.discard(event.job_id)  # ran again after `askq retry`
            if self._follow and event.job_id not in self._running:
                self._running[event.job_id] = LogCursor(event.job_id)
        cursor = self._running.get(event.job_id)
        items = cursor.take([event]) if cursor is not None else []
        if event.type.is_final and event.job_id not in self._ended_jobs:
            self._running.pop(event.job_id, None)
            self._ended_jobs.add(event.job_id)
            ended.append(event.job_id)
        return items

    async def _ended(self, job_ids: list[str]) -> list[BatchItem]:
        job_ids = list(dict.fromkeys(job_ids))  # a job re-run within one read ended twice
        if not job_ids:
            return []
        ends = [
            JobEnded.from_result(result_from_record(job_id, fields))
            for job_id, fields in zip(job_ids, await read_jobs(self._redis, job_ids), strict=True)
        ]
        for end in ends:
            if not end.state.is_terminal:
                # An end from before `askq retry` queued the job again: its next end is the one.
                self._ended_jobs.discard(end.job_id)
        return [end for end in ends if end.state.is_terminal]

    def _check_end(self, status: BatchStatus, *, quiet: bool) -> None:
        if not status.done:
            self._all_ended_at = None
            return
        if self._all_ended_at is None:
            self._all_ended_at = time.monotonic()
        seen_all = len(self._ended_jobs) >= status.finished and not self._running
        grace_over = time.monotonic() - self._all_ended_at > END_GRACE_S
        # Done once every end was seen or, if some never show (a trimmed log), once the log is quiet.
        self.ended = seen_all or (quiet and grace_over)
