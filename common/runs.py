"""Scheduled summary runs: the job payload, the run's id, and the fields of the records both sides read.

A run is tailed like a job: its record is ``keys.job_record(run_id)`` (state, answer = the summary,
usage, error) and its events are in ``keys.job_log(run_id)``. The schedule's own record
(``keys.schedule_record``) says what the next run needs: where the last window ended, which
fire time was claimed last, and the last run's state and output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict


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


def run_id(schedule: str, fire: datetime, trigger: Trigger) -> str:
    """``schedule:NAME:20261121T020000Z``; a manual run's id has milliseconds and ends in ``-manual``.

    Two manual runs asked for within one second are two runs, so their ids must differ.
    """
    moment = fire.astimezone(UTC)
    if trigger is Trigger.MANUAL:
        return f"schedule:{schedule}:{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z-manual"
    return f"schedule:{schedule}:{moment:%Y%m%dT%H%M%SZ}"


def from_ms(value_ms: int) -> datetime:
    return datetime.fromtimestamp(value_ms / 1000, UTC)


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
