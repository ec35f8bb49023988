"""Where a job's events are: the log that holds them (its batch's, or a scheduled run's own) and the
entry they come after, found from the job's record; and, when the log was trimmed past that point,
where a reader may still begin (``producer.tail`` follows from there).
"""

from __future__ import annotations

from redis.asyncio import Redis

from common import keys, record
from common.events import StreamEvent
from common.replay import Entry, entry_events
from common.status import JobState
from common.stored_jobs import read_job


async def where_events_begin(redis: Redis, job_id: str) -> tuple[str, str]:
    """The log holding the job's events, and the entry id its events come after."""
    batch, log_from = await log_fields(redis, job_id)
    log_key, _ = keys.event_feed(job_id, batch)
    if batch is None:
        return log_key, "0-0"  # a scheduled run's log is its own
    if log_from is None:
        # Not started: its events come after the log's current end, unless it starts meanwhile.
        newest = await redis.xrevrange(log_key, count=1)
        _, log_from = await log_fields(redis, job_id)
        if log_from is None:
            return log_key, newest[0][0].decode() if newest else "0-0"
    return log_key, f"{log_from - 1}-0"


async def where_to_follow_from(redis: Redis, job_id: str, state: JobState) -> tuple[str, str | None]:
    """``where_events_begin``, unless the log was trimmed past the job's beginning: then, for a live
    job, the first event it may still need (its time in the batch's live set), and for an ended one,
    None (its events left the log: its stored result stands in)."""
    log_key, after = await where_events_begin(redis, job_id)
    if after == "0-0":
        return log_key, after  # a scheduled run's own log, or an empty one
    batch, _ = keys.split_job_id(job_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(keys.batch_record(batch), record.LOG_TRIMMED_TO)
        pipe.zscore(keys.batch_live(batch), job_id)
        trimmed_to, live_from = await pipe.execute()
    if trimmed_to is None or _entry_ms(trimmed_to) <= _entry_ms(after) + 1:
        return log_key, after  # every entry from its beginning on is there
    if live_from is not None:
        return log_key, f"{int(live_from) - 1}-0"
    return log_key, None if state.is_terminal else after


def _entry_ms(entry_id: bytes | str) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


async def logged_events(redis: Redis, job_id: str) -> list[StreamEvent]:
    """Every event of the job in its log now, in log order, repeats included: for checks and reports."""
    log_key, after = await where_events_begin(redis, job_id)
    entries: list[Entry] = await redis.xrange(log_key, min=f"({after}" if after != "0-0" else "-")
    return [event for _, fields in entries for event in entry_events(fields, job_id)]


async def log_fields(redis: Redis, job_id: str) -> tuple[str | None, int | None]:
    """The job's batch (None for a scheduled run) and the Redis time (ms) before its first event (None
    until it starts)."""
    fields = await read_job(redis, job_id)  # a finished job's batch is in its results entry
    batch, log_from = fields.get(record.BATCH), fields.get(record.LOG_FROM)
    return batch or None, (int(log_from) if log_from else None)
