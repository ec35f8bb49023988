"""SSE ids: each is the place in the stream after its event, which a client sends back as
``Last-Event-ID`` to go on from there (a browser's EventSource does it by itself).

- a job's event: ``ENTRY/SEQ``: the job's events up to ``SEQ`` were delivered; they come from log
  entries after ``ENTRY`` (a read's starting point), so the stream reads on from there and drops
  what it had;
- a batch's event: ``ENTRY.INDEX``: the event at ``INDEX`` of log entry ``ENTRY``; ``ENTRY.INDEX+``:
  and the job's end (its stored result) sent right after it; ``item.N`` and ``final-item.N``: the
  stored end of the batch's item ``N`` in the listing of ended jobs at the start or at the end;
- ``end``: the stream ended; a client coming back with it gets 204 (EventSource stops reconnecting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis.asyncio import Redis

from common import keys
from producer.batch_tail_items import BatchResume
from producer.log_reader import id_key
from producer.tail import Resume
from server.errors import ApiError

END = "end"
_ENTRY = r"(\d{1,20}-\d{1,20})"
_JOB = re.compile(rf"{_ENTRY}/(\d{{1,20}})")
_BATCH_EVENT = re.compile(rf"{_ENTRY}\.(\d{{1,9}})(\+?)")
_BATCH_ITEM = re.compile(r"(final-)?item\.(\d{1,12})")


def job_cursor(after: str, seq: int) -> str:
    return f"{after}/{seq}"


def event_cursor(entry: str, index: int, *, with_end: bool = False) -> str:
    return f"{entry}.{index}{'+' if with_end else ''}"


def item_cursor(index: int, *, final: bool) -> str:
    return f"{'final-' if final else ''}item.{index}"


def job_resume(last_event_id: str) -> Resume:
    found = _JOB.fullmatch(last_event_id)
    if found is None:
        raise _not_ours(last_event_id, "ENTRY/SEQ")
    return Resume(found[1], int(found[2]))


def batch_resume(last_event_id: str) -> BatchResume:
    if event := _BATCH_EVENT.fullmatch(last_event_id):
        return BatchResume(entry=event[1], index=int(event[2]), end_sent=event[3] == "+")
    if item := _BATCH_ITEM.fullmatch(last_event_id):
        return BatchResume(listed=int(item[2]), final=item[1] is not None)
    raise _not_ours(last_event_id, "ENTRY.INDEX, ENTRY.INDEX+ or item.N")


@dataclass(frozen=True)
class EndedSkipped:
    """A batch stream that leaves out the jobs ended before it began (``?skip_ended=true``).

    It reads the log from the first event still needed by a job live when it began (the log is
    trimmed below that only), so those jobs' text comes whole; the other jobs whose events are in
    the log before ``until`` (now, when it began) had ended: their events and ends are left out,
    and no listing of stored ends comes first.
    """

    resume: BatchResume
    live: frozenset[str]
    until: tuple[int, int]

    def skips(self, job_id: str, entry: str | None) -> bool:
        return entry is not None and id_key(entry) < self.until and job_id not in self.live


async def ended_skipped(redis: Redis, batch: str) -> EndedSkipped:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrange(keys.batch_live(batch), 0, -1, withscores=True)
        pipe.time()
        live, (seconds, micros) = await pipe.execute()
    now = f"{seconds * 1000 + micros // 1000}-0"
    start = f"{int(min(score for _, score in live))}-0" if live else now
    # As if everything before ``start`` was delivered: ends logged before it were had.
    resume = BatchResume(entry=start, index=-1)
    return EndedSkipped(resume, frozenset(job_id.decode() for job_id, _ in live), id_key(now))


def _not_ours(last_event_id: str, shape: str) -> ApiError:
    shown = last_event_id[:80]
    return ApiError(
        400,
        f"Last-Event-ID {shown!r} is not a place in this stream (expected {shape}, or 'end'): "
        "send the id of the last event received from it, or none to start from the beginning",
        param="Last-Event-ID",
        code="invalid_last_event_id",
    )
