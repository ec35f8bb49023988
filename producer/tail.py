"""Follow one job's stream events from where the subscriber joins until the job ends.

A job that has already finished yields its stored result (``Finished``), so ``tail`` never waits on
a channel that will stay silent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import ValidationError
from redis.asyncio import Redis

from common import keys, record
from common.errors import NotFoundError
from common.events import StreamEvent
from common.status import JobState
from common.usage import Usage

STATE_RECHECK_S = 1.0
"""While the channel is quiet, how often the stored state is read in case the end was missed."""


@dataclass(frozen=True)
class Waiting:
    """The job has not started yet."""

    job_id: str


@dataclass(frozen=True)
class Finished:
    """The job ended before (or without) its final event reaching us: its stored result."""

    job_id: str
    state: JobState
    answer: str
    error: str
    attempts: int
    usage: Usage | None


async def follow_job(redis: Redis, job_id: str) -> AsyncIterator[StreamEvent | Waiting | Finished]:
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        # Subscribe before reading the state, so an end that happens in between is not missed.
        await pubsub.subscribe(keys.job_events_channel(job_id))
        state = await _state(redis, job_id)
        if state is JobState.QUEUED:
            yield Waiting(job_id)
        while not state.is_terminal:
            message = await pubsub.get_message(timeout=STATE_RECHECK_S)
            if message is None:
                state = await _state(redis, job_id)
                continue
            event = _parse(message["data"])
            if event is None:
                continue
            yield event
            if event.type.is_final:
                return
        yield await stored_end(redis, job_id)


async def _state(redis: Redis, job_id: str) -> JobState:
    value = await redis.hget(keys.job_record(job_id), record.STATE)  # type: ignore[misc]  # redis-py types sync and async alike
    if value is None:
        raise NotFoundError(f"unknown job {job_id!r} (job ids look like BATCH:ITEM; see `askq status BATCH`)")
    return JobState(value.decode())


async def stored_end(redis: Redis, job_id: str) -> Finished:
    raw = await redis.hgetall(keys.job_record(job_id))  # type: ignore[misc]  # as above
    fields = {name.decode(): value.decode() for name, value in raw.items()}
    return Finished(
        job_id=job_id,
        state=JobState(fields.get(record.STATE, JobState.FAILED.value)),
        answer=fields.get(record.ANSWER, ""),
        error=fields.get(record.ERROR, ""),
        attempts=int(fields.get(record.ATTEMPTS) or 0),
        usage=Usage.model_validate_json(fields[record.USAGE]) if fields.get(record.USAGE) else None,
    )


def _parse(data: bytes | str) -> StreamEvent | None:
    try:
        return StreamEvent.model_validate(json.loads(data))
    except (ValueError, ValidationError):
        return None  # not an askq event: someone else published on the channel
