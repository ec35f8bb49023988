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
from producer.batch_tail import follow_batch_reads
from producer.batch_tail_items import BatchItem, BatchResume, JobEnded, Listed, Progress, Unseen
from producer.log_reader import At, LogReader
from producer.tail import Finished, Gap, ProviderWait, Resume, TailItem, Waiting, follow_job_reads
from producer.tail_json import item_json
from server.events.cursors import END, EndedSkipped, event_cursor, item_cursor, job_cursor
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
    """The job's events from its first (or after ``resume``) until it ends, then ``end``; what one
    read brings in one piece (one send: a reconnect's backlog, a fast stream's burst)."""
    frames = _JobFrames(resume)
    async for items in follow_job_reads(redis, job_id, reader=reader, resume=resume, positions=True):
        if data := b"".join(frame for item in items if (frame := frames.of(item)) is not None):
            yield data
    yield _event("end", {"job_id": job_id, "state": frames.state}, END)


async def batch_events(
    redis: Redis,
    batch: str,
    reader: LogReader,
    resume: BatchResume | None,
    *,
    keep_going: bool,
    skip: EndedSkipped | None = None,
) -> AsyncGenerator[bytes, None]:
    """Progress, every job's events and every job's end, until the batch is done (or for good);
    with ``skip``, not those of the jobs that had ended before the stream began."""
    frames = _BatchFrames(skip)
    if skip is not None:
        resume = skip.resume
    reads = follow_batch_reads(
        redis, batch, follow=True, reader=reader, positions=True, resume=resume, until_done=not keep_going
    )
    async for items in reads:
        if data := b"".join(frame for item in items if (frame := frames.of(item)) is not None):
            yield data
    done = bool(frames.sent_progress and frames.sent_progress["done"])
    yield _event("end", {"batch": batch, "done": done}, END)


class _JobFrames:
    """A job stream's items as SSE: each event's id is its place after the entry its read started after."""

    def __init__(self, resume: Resume | None) -> None:
        self.after = resume.after if resume else "0-0"
        self.state: str | None = None

    def of(self, item: TailItem) -> bytes | None:
        if isinstance(item, At):
            self.after = item.after
        elif isinstance(item, StreamEvent):
            self.state = _ENDS.get(item.type)
            return _event(item.type.value, item.to_json(), job_cursor(self.after, item.seq))
        elif isinstance(item, Gap):
            return _event("gap", item_json(item), job_cursor(self.after, item.last_seq))
        elif isinstance(item, Finished):
            self.state = item.state.value
            return _event("result", item_json(item), END)
        return _notice(item)


class _BatchFrames:
    """A batch stream's items as SSE: each event's id is its place in the log (or in a listing)."""

    def __init__(self, skip: EndedSkipped | None) -> None:
        self.skip = skip
        self.place: str | None = None
        self.entry: str | None = None
        """The log entry the items come from (None in a listing of stored ends): what ``skip`` asks."""
        self.after_event = False
        self.sent_progress: dict[str, Any] | None = None

    def of(self, item: BatchItem) -> bytes | None:
        if self._skipped(item):
            return None
        if isinstance(item, At):
            self.entry = item.after
            self.place, self.after_event = event_cursor(item.after, item.index or 0), True
        elif isinstance(item, Listed):
            self.entry = None
            self.place, self.after_event = item_cursor(item.index, final=item.final), False
        elif isinstance(item, StreamEvent):
            return _event(item.type.value, item.to_json(), self.place)
        elif isinstance(item, JobEnded):
            # Right after its final event (its place with '+'), or in a listing of stored ends.
            return _event("result", item_json(item), f"{self.place}+" if self.after_event else self.place)
        elif isinstance(item, Progress):
            progress = item.status.to_json()
            if progress != self.sent_progress:  # the counters are re-read often; only changes go out
                self.sent_progress = progress
                return _event("progress", progress)
        elif isinstance(item, Gap):
            return _event("gap", item_json(item), self.place)
        elif isinstance(item, Unseen):  # ends the counters count that no record is left for
            return _event("unseen", item_json(item))
        else:
            return _notice(item)
        return None

    def _skipped(self, item: BatchItem) -> bool:
        return (
            self.skip is not None
            and isinstance(item, StreamEvent | JobEnded | Gap)
            and self.skip.skips(item.job_id, self.entry)
        )
