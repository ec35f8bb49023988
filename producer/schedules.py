"""What ``askq schedule list`` shows: each schedule's next fire time and its last run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig


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
                last_run={field.decode(): value.decode() for field, value in raw.items()},
            )
        )
    return rows
