"""Event logs: the Redis Streams that hold every event of a batch's jobs (or of a scheduled run).

Writers and readers agree here on the entry layout: one field, ``keys.LOG_FIELD``, holding a JSON
array of events; the pub/sub channel carries the same bytes. One entry is one flush of one worker,
so it holds events of many jobs: a reader of one job keeps those whose ``job_id`` is its own.
A job's events are numbered by ``seq``; an entry sent twice (after a lost reply) repeats seqs that
readers drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from common import keys, record
from common.events import EventType, StreamEvent

LOG_FIELD_BYTES = keys.LOG_FIELD.encode()
SCAN_PAGE = 200
"""Entries per read when searching a log backwards for a job's last event."""
CLOCK_SLACK_MS = 5_000
"""How far before a worker's clock reading a backwards search goes on, for clocks that disagree."""

Entry = tuple[bytes, dict[bytes, bytes]]

MARK_LOG_FROM_LUA = f"""
local function mark_log_from(rec)
  local now = redis.call('TIME')
  redis.call('HSETNX', rec, '{record.LOG_FROM}', now[1] * 1000 + math.floor(now[2] / 1000))
end
"""
"""Lua for whoever writes a job's first event: the record's ``log_from`` becomes Redis's time now,
which no entry id written after it is below."""


def encode_entry(events: list[str]) -> str:
    """One log entry (and channel message) from events already serialised as JSON objects."""
    return f"[{','.join(events)}]"


class ParsedFields(dict[bytes, bytes]):
    """An entry's fields that come with its events already parsed: a server hands one entry to every
    client of a job, and each would otherwise parse and validate it again."""

    def __init__(self, fields: dict[bytes, bytes], events: list[StreamEvent]) -> None:
        super().__init__(fields)
        self.events = events


def decode_message(
    data: bytes | str | None, job_id: str | None = None, *, deltas: bool = True
) -> list[StreamEvent]:
    """The events of one entry or message (only ``job_id``'s if given, no deltas unless ``deltas``);
    nothing that is not askq's."""
    if data is None:
        return []
    try:
        raw = json.loads(data)
    except ValueError:
        return []
    if not isinstance(raw, list):
        return []
    return parse_events(raw, job_id, deltas=deltas)


def parse_events(items: list[Any], job_id: str | None = None, *, deltas: bool = True) -> list[StreamEvent]:
    """``decode_message`` of an entry's items already read as JSON."""
    return [event for item in items if (event := _event(item, job_id, deltas)) is not None]


def entry_events(
    fields: dict[bytes, bytes], job_id: str | None = None, *, deltas: bool = True
) -> list[StreamEvent]:
    if isinstance(fields, ParsedFields):
        return [
            event
            for event in fields.events
            if (job_id is None or event.job_id == job_id) and (deltas or event.type is not EventType.DELTA)
        ]
    return decode_message(fields.get(LOG_FIELD_BYTES), job_id, deltas=deltas)


def _event(item: Any, job_id: str | None, deltas: bool) -> StreamEvent | None:
    # Events a reader does not want are skipped before validation: a reader of one job in a busy
    # batch would otherwise spend its time building models it throws away.
    if not isinstance(item, dict) or (job_id is not None and item.get("job_id") != job_id):
        return None
    if not deltas and item.get("type") == EventType.DELTA.value:
        return None
    try:
        return StreamEvent.model_validate(item)
    except ValidationError:
        return None


async def last_event_in_log(redis: Redis, log: str, job_id: str, *, since_ms: int = 0) -> StreamEvent | None:
    """The job's latest event in ``log``, searching back to ``since_ms`` (Redis time): a lost run's end."""
    newest: bytes | str = "+"
    oldest = f"{max(since_ms - CLOCK_SLACK_MS, 0)}-0"
    while True:
        entries: list[Entry] = await redis.xrevrange(log, max=newest, min=oldest, count=SCAN_PAGE)
        for _, fields in entries:
            events = entry_events(fields, job_id)
            if events:
                return max(events, key=lambda event: event.seq)
        if len(entries) < SCAN_PAGE:
            return None
        newest = f"({entries[-1][0].decode()}"


@dataclass(frozen=True)
class RunTrail:
    """What the log shows of a job's run that was lost: where numbering goes on, and what it spent."""

    last: StreamEvent | None
    """The job's latest event in the log."""
    attempts: int
    """Provider attempts the run started (its ``start`` events)."""
    text_bytes: int
    """UTF-8 bytes of the text it received, over all its attempts."""


async def run_trail(redis: Redis, log: str, job_id: str, *, since_ms: int, started_at_s: float) -> RunTrail:
    """The job's events in ``log`` from ``since_ms`` (Redis time) on; those stamped at or after
    ``started_at_s`` (the lost run's start, by its own worker's clock) are that run's."""
    last: StreamEvent | None = None
    attempts = text_bytes = 0
    oldest: str = f"{max(since_ms - CLOCK_SLACK_MS, 0)}-0"
    while True:
        entries: list[Entry] = await redis.xrange(log, min=oldest, max="+", count=SCAN_PAGE)
        for _, fields in entries:
            for event in entry_events(fields, job_id):
                if last is None or event.seq > last.seq:
                    last = event
                if event.ts < started_at_s:
                    continue  # an earlier run's, counted when that one was found lost
                if event.type is EventType.START and event.part is None:
                    attempts = max(attempts, event.attempt)
                elif event.type is EventType.DELTA:
                    text_bytes += len((event.text or "").encode())
        if len(entries) < SCAN_PAGE:
            return RunTrail(last, attempts, text_bytes)
        oldest = f"({entries[-1][0].decode()}"
