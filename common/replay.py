"""Reading replay logs: the Redis Streams that hold each job's events (and each batch's starts and ends).

Writers and readers agree here on the entry layout: one field, ``keys.LOG_FIELD``, holding the same
JSON as the pub/sub message, under the id ``SEQ-0`` in a job's log (auto ids in a batch's log).
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from redis.asyncio import Redis

from common import keys
from common.events import StreamEvent

LOG_FIELD_BYTES = keys.LOG_FIELD.encode()


def log_entry_id(seq: int) -> str:
    """A job-log entry's id is its event's seq: an event written twice is refused the second time."""
    return f"{seq}-0"


def parse_event(data: bytes | str | None) -> StreamEvent | None:
    """The event in a log entry or pub/sub message; None when it is not an askq event."""
    if data is None:
        return None
    try:
        return StreamEvent.model_validate(json.loads(data))
    except (ValueError, ValidationError):
        return None


def entry_event(fields: dict[bytes, bytes]) -> StreamEvent | None:
    return parse_event(fields.get(LOG_FIELD_BYTES))


async def last_logged_event(redis: Redis, job_id: str) -> StreamEvent | None:
    entries = await redis.xrevrange(keys.job_log(job_id), count=1)
    return entry_event(entries[0][1]) if entries else None
