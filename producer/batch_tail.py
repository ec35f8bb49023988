"""Follow a whole batch: its progress, each job's end with the answer, and optionally every job's text.

The batch's event log (a Redis Stream) says which jobs run and which ended; the batch's counters
give the progress. With ``follow``, each running job's events in the same log go through a
``LogCursor``, so their text is as lossless as a single ``askq tail``.

An ended job's events leave the log (``common.live_log``), so the log cannot say which jobs ended
before the reader came, or while it lagged behind. Once the log was trimmed, the jobs ended when the
reader starts are reported first from their stored results, a page of job ids at a time in input
order (the log's events up to each one's last seq are then old news); and once the counters say
every job has ended and the log is read to its end, so are any ended jobs not reported yet. A log
never trimmed (``stream.keep_ended_events``, or a young batch) is read from its start as it is.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from common import keys, record
from common.events import EventType, StreamEvent
from common.replay import entry_events
from common.status import JobState
from common.stored_jobs import read_jobs
from producer.batch_tail_items import BatchItem, BatchResume, JobEnded, Listed, Progress, Unseen
from producer.batches import PAGE_ITEMS, BatchStatus, batch_status
from producer.log_reader import At, LogReader, RedisLogReader, entry_before, id_key, id_text
from producer.reconnect import each_item, follow_steps
from producer.results import result_from_record
from producer.tail import READ_COUNT, Gap, LogCursor

BLOCK_MS = 250
"""Longest wait on the logs; the progress is re-read at least this often."""
_LISTING_FIELDS = [record.STATE, record.SEQ, record.STOPPING, record.END_ENTRY]


@dataclass(frozen=True)
class _EndHere:
    """Where a job's end goes among a read's items, until its stored result is read."""

    job_id: str


async def follow_batch_reads(
    redis: Redis,
    batch: str,
    *,
    follow: bool,
    block_ms: int = BLOCK_MS,
    reader: LogReader | None = None,
    positions: bool = False,
    resume: BatchResume | None = None,
    until_done: bool = True,
) -> AsyncIterator[list[BatchItem]]:
    """Yield progress, ended jobs and (with ``follow``) every running job's events until the batch ends,
    what each read brings in one list (a server writes it in one send; ``follow_batch``: one by one).

    ``positions``: an ``At`` before each log event's items and a ``Listed`` before each stored end,
    each job's end right after its final event: where a reader that resumes (``resume``) stopped.
    Without ``until_done`` it goes on after the batch is done (jobs may run again: ``askq retry``).
    """
    follower = _BatchFollower(redis, batch, follow, block_ms, reader or RedisLogReader(redis), positions)
    follower.until_done = until_done
    yield [Progress(await follower.read_progress())]
    if resume is not None:
        trimmed_to = await redis.hget(keys.batch_record(batch), record.LOG_TRIMMED_TO)  # type: ignore[misc]  # redis-py types sync and async alike
        follower.resume(resume, trimmed_to=None if trimmed_to is None else id_text(trimmed_to))
    elif await redis.hexists(keys.batch_record(batch), record.LOG_TRIMMED_TO):  # type: ignore[misc]  # redis-py types sync and async alike
        follower.report_stored_ends_first()
    async for items in follow_steps(follower):
        yield items


follow_batch = each_item(follow_batch_reads)


class _BatchFollower:
    def __init__(
        self, redis: Redis, batch: str, follow: bool, block_ms: int, reader: LogReader, positions: bool
    ) -> None:
        self._redis = redis
        self._reader = reader
        self._positions = positions
        self._skip: BatchResume | None = None
        """Resuming: the events up to here were delivered; they still go through ``_take`` for its state."""
        self._resumed = False
        self._had_ends_to: str | None = None  # resumed at this entry: the ends logged before it were had
        self.until_done = True
        self._listed_final = False
        """Going on after the end: the final listing of stored ends was made (until jobs run again)."""
        self._batch = batch
        self._follow = follow
        self._block_ms = block_ms
        self._log = keys.batch_log(batch)
        self._log_last_id: bytes | str = "0-0"
        self._running: dict[str, LogCursor] = {}
        self._ended_jobs: set[str] = set()
        self._reported_seq: dict[str, int] = {}
        """Jobs reported from their stored results: the last seq of theirs the log may still hold."""
        self._paging: int | None = None
        """While reporting ended jobs from their stored results: the next item's index in the batch."""
        self._final = False
        self._progress_read_at = 0.0
        self.ended = False

    async def read_progress(self) -> BatchStatus:
        self._progress_read_at = time.monotonic()
        return await batch_status(self._redis, self._batch, with_job_ids=False, with_latencies=False)

    def report_stored_ends_first(self) -> None:
        """The log was trimmed: it no longer holds every end; the jobs ended by now are reported first."""
        self._paging = 0

    def resume(self, where: BatchResume, *, trimmed_to: str | None) -> None:
        """Go on from ``where``; ``trimmed_to``: the log's floor, if it was trimmed."""
        if where.listed is not None:
            self._paging, self._final = where.listed + 1, where.final
        elif where.entry is not None:
            self._log_last_id = entry_before(where.entry)
            self._skip, self._had_ends_to = where, where.entry
            # Running jobs' text goes on from the log, unless entries after the reader's place left it:
            # then a job's text would have a hole no seq shows; its stored end comes instead.
            self._resumed = trimmed_to is None or id_key(trimmed_to) <= id_key(where.entry)

    async def step(self) -> list[BatchItem]:
        if self._paging is not None:
            return await self._stored_ends_page()
        reply = await self._reader.read(self._log, self._log_last_id, READ_COUNT, self._block_ms)
        found: list[BatchItem | _EndHere] = []
        ended: list[str] = []
        for entry_id, fields in reply:
            self._log_last_id = entry_id
            for index, event in enumerate(entry_events(fields, deltas=self._follow)):
                before = len(ended)
                taken = self._take(event, ended)
                found += self._placed(id_text(entry_id), index, taken, ended, len(ended) > before)
            self._skip = None
        ends = {end.job_id: end for end in await self._ended(ended)}
        # Each end in its place (with positions), else after the read's events, as the CLI shows them.
        items: list[BatchItem] = []
        for item in found:
            if not isinstance(item, _EndHere):
                items.append(item)
            elif item.job_id in ends:
                items.append(ends.pop(item.job_id))
        items += ends.values()
        if reply and not ended and time.monotonic() - self._progress_read_at < self._block_ms / 1000:
            # Only text arrived: the counters cannot have moved to an end; spare a read per chunk.
            return items
        status = await self.read_progress()
        items.append(Progress(status))
        self._listed_final = self._listed_final and status.done
        if status.done and self._seen_all(status):
            self.ended = self.until_done
        elif status.done and not reply and not self._listed_final:
            # Every job has ended and the log is read to its end: the ends it did not show left it
            # before this reader got there (or are a cancelled run's, still on its way).
            self._paging, self._final = 0, True
        return items

    async def _stored_ends_page(self) -> list[BatchItem]:
        """A page of the batch's ended jobs not reported yet, from their stored results, in input order.

        Before the end, a job cancelled while running whose run has not stopped yet is left to its
        ``cancelled`` event: its run's events are numbered past its record's seq.
        """
        start = self._paging or 0
        page = await self._redis.lrange(keys.batch_items(self._batch), start, start + PAGE_ITEMS - 1)  # type: ignore[misc]  # redis-py types sync and async alike
        job_ids = [job_id.decode() for job_id in page]
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(keys.job_record(job_id), _LISTING_FIELDS)
            replies = await pipe.execute()
        seqs = {
            job_id: int(seq or 0)
            for job_id, (state, seq, stopping, end_entry) in zip(job_ids, replies, strict=True)
            if job_id not in self._ended_jobs
            and state is not None
            and JobState(state.decode()).is_terminal
            and (self._final or stopping is None)
            and not self._had_end(job_id, end_entry)
        }
        items: list[BatchItem] = []
        index_of = {job_id: start + offset for offset, job_id in enumerate(job_ids)}
        for end in await self._results(list(seqs)):
            if end.state.is_terminal:
                self._ended_jobs.add(end.job_id)
                self._reported_seq[end.job_id] = seqs[end.job_id]
                self._running.pop(end.job_id, None)
                if self._positions:
                    items.append(Listed(index_of[end.job_id], self._final))
                items.append(end)
        self._paging = start + PAGE_ITEMS if len(job_ids) == PAGE_ITEMS else None
        if self._paging is None and self._final:
            status = await self.read_progress()
            items.append(Progress(status))
            if len(self._ended_jobs) < status.finished:
                items.append(Unseen(status.finished - len(self._ended_jobs)))
            self.ended = self.until_done
            self._final, self._listed_final = False, True
        return items

    def _had_end(self, job_id: str, end_entry: bytes | None) -> bool:
        """Resumed: the job's end was logged before the reader's place (a record older than ``END_ENTRY``
        cannot say: listed; an end in the entry resumed at is read there again)."""
        if self._had_ends_to is None or end_entry is None or id_key(end_entry) >= id_key(self._had_ends_to):
            return False
        self._ended_jobs.add(job_id)  # seen, as far as the exit rule and ``Unseen`` go
        return True

    def _placed(
        self, entry: str, index: int, taken: list[StreamEvent | Gap], ended: list[str], ends_job: bool
    ) -> list[BatchItem | _EndHere]:
        """One log event's items: with positions, where it is and (a placeholder for) the end it made;
        when resuming, nothing for the events the reader had (``_take`` has seen them, for its state)."""
        skip = self._skip
        if skip is not None and entry == skip.entry and index <= skip.index:
            if ends_job and (index < skip.index or skip.end_sent):
                ended.pop()  # its end was delivered right after it
            return []
        if not self._positions or not (taken or ends_job):
            return list(taken)
        return [At(entry, index), *taken, *([_EndHere(ended[-1])] if ends_job else [])]

    def _seen_all(self, status: BatchStatus) -> bool:
        return len(self._ended_jobs) >= status.finished and not self._running

    def _known(self, job_id: str) -> bool:
        return job_id in self._running or job_id in self._ended_jobs

    def _take(self, event: StreamEvent, ended: list[str]) -> list[StreamEvent | Gap]:
        """One event of the log: a followed job's text, and ``ended`` gains the jobs it ends."""
        if event.seq <= self._reported_seq.get(event.job_id, 0):
            return []  # of a run whose end was reported from its stored result
        if event.type is EventType.START:
            self._ended_jobs.discard(event.job_id)  # ran again after `askq retry`
            if self._follow and event.job_id not in self._running:
                self._running[event.job_id] = LogCursor(event.job_id)
        elif self._resumed and self._follow and not self._known(event.job_id):
            # Resuming mid-run: the reader had this job's earlier events; it goes on from here.
            self._running[event.job_id] = LogCursor(event.job_id)
            self._running[event.job_id].last_seq = event.seq - 1
        cursor = self._running.get(event.job_id)
        items = cursor.take([event]) if cursor is not None else []
        if event.type.is_final and event.job_id not in self._ended_jobs:
            self._running.pop(event.job_id, None)
            self._ended_jobs.add(event.job_id)
            ended.append(event.job_id)
        return items

    async def _ended(self, job_ids: list[str]) -> list[JobEnded]:
        job_ids = list(dict.fromkeys(job_ids))  # a job re-run within one read ended twice
        if not job_ids:
            return []
        ends = await self._results(job_ids)
        for end in ends:
            if not end.state.is_terminal:
                # An end from before `askq retry` queued the job again: its next end is the one.
                self._ended_jobs.discard(end.job_id)
        return [end for end in ends if end.state.is_terminal]

    async def _results(self, job_ids: list[str]) -> list[JobEnded]:
        if not job_ids:
            return []
        return [
            JobEnded.from_result(result_from_record(job_id, fields))
            for job_id, fields in zip(job_ids, await read_jobs(self._redis, job_ids), strict=True)
        ]
