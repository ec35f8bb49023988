"""``askq schedule``: each schedule's next fire and last run, a run asked for now, past runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from common import keys, record, runs
from common.config import AskqConfig
from common.errors import NotFoundError
from common.runs import RunPayload, Trigger
from common.schedules import ScheduleConfig
from common.status import JobState
from producer.arq_jobs import serialized_job

ARQ_JOB_KEEP_MS = 86_400_000
"""How long an asked-for run's arq job waits for a worker before it expires (arq's own default)."""


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    cron: str
    timezone: str
    source: str
    next_fire: datetime
    last_run: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "source": self.source,
            "next_fire": self.next_fire.isoformat(),
            "last_run": self.last_run or None,
        }


async def schedule_rows(redis: Redis, config: AskqConfig, now: datetime | None = None) -> list[ScheduleRow]:
    now = now or datetime.now(ZoneInfo("UTC"))
    names = sorted(config.schedules)
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.schedule_record(name))
        records = await pipe.execute()
    rows = []
    for name, raw in zip(names, records, strict=True):
        schedule = config.schedules[name]
        rows.append(
            ScheduleRow(
                name=name,
                cron=schedule.cron,
                timezone=schedule.timezone,
                source=schedule.source.kind,
                next_fire=schedule.next_fire(now),
                last_run=_last_run({field.decode(): value.decode() for field, value in raw.items()}),
            )
        )
    return rows


def _last_run(fields: dict[str, str]) -> dict[str, str]:
    shown = {
        "run_id": runs.LAST_RUN,
        "state": runs.LAST_STATE,
        "output": runs.LAST_OUTPUT,
        "finished_at": runs.LAST_FINISHED_AT,
    }
    return {name: fields[field] for name, field in shown.items() if fields.get(field)}


def known_schedule(config: AskqConfig, name: str) -> ScheduleConfig:
    schedule = config.schedules.get(name)
    if schedule is None:
        known = ", ".join(sorted(config.schedules)) or "none: jobs.yaml has no schedules"
        raise NotFoundError(f"unknown schedule {name!r} (jobs.yaml's schedules: {known})")
    return schedule


async def request_run(redis: Redis, config: AskqConfig, name: str) -> str:
    """Queue a run of the schedule now, for the schedules worker; its run id, which ``tail`` follows."""
    schedule = known_schedule(config, name)
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # whole ms: the run id names them
    run_id = runs.run_id(name, now, Trigger.MANUAL)
    payload = RunPayload(schedule=name, run_id=run_id, trigger=Trigger.MANUAL, fire_ms=runs.to_ms(now))
    enqueued_ms = runs.to_ms(now)
    queued = {
        record.STATE: JobState.QUEUED.value,
        record.QUESTION: schedule.prompt,
        record.ENQUEUED_AT: str(time.time()),
        runs.SCHEDULE: name,
        runs.TRIGGER: Trigger.MANUAL.value,
        runs.FIRE_AT: now.astimezone(schedule.zone).isoformat(),
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.job_record(run_id), mapping=queued)
        pipe.expire(keys.job_record(run_id), config.retention.ttl_s)
        job = serialized_job(keys.SUMMARIZE_FUNCTION, payload.model_dump(mode="json"), enqueued_ms)
        pipe.set(keys.arq_job(run_id), job, px=ARQ_JOB_KEEP_MS)
        pipe.zadd(keys.SCHEDULE_QUEUE, {run_id: enqueued_ms})
        pipe.publish(keys.queue_wake(keys.SCHEDULE_QUEUE), b"")
        await pipe.execute()
    return run_id


async def schedules_served(redis: Redis) -> bool:
    """Whether a worker serving the schedules queue has reported itself alive lately."""
    return bool(await redis.exists(keys.SCHEDULE_HEALTH))


async def run_history(redis: Redis, config: AskqConfig, name: str, limit: int) -> list[dict[str, Any]]:
    """The schedule's finished runs, newest first."""
    known_schedule(config, name)
    entries = await redis.lrange(keys.schedule_history(name), 0, limit - 1)  # type: ignore[misc]  # redis-py types sync and async alike
    return [json.loads(entry) for entry in entries]
