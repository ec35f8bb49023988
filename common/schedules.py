"""The ``schedules:`` section of jobs.yaml: when a summary runs, what it reads, where it writes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from common.confine import check_relative
from common.cron import Cron, CronError
from common.strict import Strict

SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AnswersSource(Strict):
    """Questions and answers finished since the schedule's previous run."""

    kind: Literal["answers"]
    batch: str | None = None
    """Only this batch's answers."""
    job_type: str | None = None
    """Only answers of this job type."""


class FilesSource(Strict):
    """Text or Markdown files matching a glob, relative to the root folder (``files_root``)."""

    kind: Literal["files"]
    glob: str = Field(min_length=1)
    all: bool = False
    """Every matching file at each run, not only those changed since the previous one."""

    _inside_root = field_validator("glob")(classmethod(lambda cls, value: check_relative(value)))


class ScheduleConfig(Strict):
    cron: str
    """Five fields, e.g. "0 2 * * *", in ``timezone``."""
    timezone: str = "UTC"
    source: AnswersSource | FilesSource = Field(discriminator="kind")
    prompt: str = Field(min_length=1)
    model: str | None = None
    """Default: the provider's model."""
    output: str = Field(default="summaries", min_length=1)
    """Folder for OUTPUT/NAME/YYYY-MM-DD.md, relative to the root folder (``files_root``)."""
    context_tokens: int = Field(default=8000, ge=500)
    """Budget per model call: a larger input is summarized in chunks, then the summaries reduced."""
    catch_up: bool = True
    """A tick missed while no worker was up runs once when a worker starts."""
    batch_api: bool = False
    """Send the map step through the OpenAI Batch API (half price, no streaming)."""
    timeout_s: float = Field(default=3600.0, gt=0)
    """A run still going after this long is failed."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            Cron.parse(value).next_fire(datetime.now(ZoneInfo("UTC")), ZoneInfo("UTC"))
        except CronError as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    _output_inside_root = field_validator("output")(classmethod(lambda cls, value: check_relative(value)))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (an IANA name such as Europe/Paris or UTC)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_fire(self, after: datetime) -> datetime:
        return Cron.parse(self.cron).next_fire(after, self.zone)

    def previous_fire(self, before: datetime) -> datetime:
        return Cron.parse(self.cron).previous_fire(before, self.zone)

    def period_before(self, end: datetime) -> datetime:
        """``end`` less one period of the schedule: a first run's window, having no previous run."""
        last = self.previous_fire(end)
        return end - (self.next_fire(last) - last)


def check_schedule_name(name: str) -> None:
    if not SCHEDULE_NAME.match(name):
        raise ValueError(f"schedule name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
