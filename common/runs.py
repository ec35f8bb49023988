"""Scheduled summary runs: the job payload, the run's id, and the fields of the records both sides read.

A run is tailed like a job: its record is ``keys.job_record(run_id)`` (state, answer = the summary,
usage, error) and its events are in ``keys.job_log(run_id)``. The schedule's own record
(``keys.schedule_record``) says what the next run needs: where the last window ended, which
fire time was claimed last, and the last run's state and output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict

from common import keys


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    CATCH_UP = "catch-up"
    MANUAL = "manual"


class RunPayload(BaseModel):
    """The argument of the ``summarize`` arq job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str
    run_id: str
    trigger: Trigger
    fire_ms: int
    """The fire time the run stands for (a manual run: when it was asked for), unix milliseconds."""


def stored_as(payload: RunPayload) -> str | None:
    """The arq job id a ``summarize`` job with this payload is stored under, or None when the payload
    does not hold together (its run id is not the one its schedule, fire time and trigger make).

    A manual run is stored under its run id; a catch-up under the id arq's cron gives that tick, so
    a tick still queued is not run twice. Scheduled ticks are arq's cron jobs, never ``summarize``.
    """
    if payload.trigger is Trigger.SCHEDULED:
        return None
    if payload.run_id != run_id(payload.schedule, from_ms(payload.fire_ms), payload.trigger):
        return None
    if payload.trigger is Trigger.MANUAL:
        return payload.run_id
    return f"{keys.schedule_cron(payload.schedule)}:{payload.fire_ms}"


def run_id(schedule: str, fire: datetime, trigger: Trigger) -> str:
    """``schedule:NAME:20261121T020000Z``; a manual run's id has milliseconds and ends in ``-manual``.

    Two manual runs asked for within one second are two runs, so their ids must differ.
    """
    moment = fire.astimezone(UTC)
    if trigger is Trigger.MANUAL:
        return f"schedule:{schedule}:{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z-manual"
    return f"schedule:{schedule}:{moment:%Y%m%dT%H%M%SZ}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ms(value_ms: int) -> datetime:
    # Exact, where a float of seconds may land a microsecond off the millisecond a run id names.
    return _EPOCH + timedelta(milliseconds=value_ms)


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


# Schedule record (keys.schedule_record).
SINCE: Final = "since"
"""When a worker first saw the schedule (unix s): no tick before it counts as missed."""
LAST_FIRE_MS: Final = "last_fire_ms"
"""The latest fire time a run claimed."""
WINDOW_END: Final = "window_end"
"""Where the last successful run's window ended (unix s): the next ``answers`` window starts here."""
LAST_RUN: Final = "last_run"
LAST_STATE: Final = "last_state"
LAST_OUTPUT: Final = "last_output"
LAST_FINISHED_AT: Final = "last_finished_at"

# Run record (keys.job_record(run_id)), beside common.record's STATE, ANSWER, ERROR, USAGE, ...
SCHEDULE: Final = "schedule"
TRIGGER: Final = "trigger"
FIRE_AT: Final = "fire_at"
OUTPUT: Final = "output"
