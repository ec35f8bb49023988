"""arq settings of the schedules worker: one cron job per schedule, on a queue of its own.

Each schedule is an arq cron job whose next run is askq's own cron evaluation in the schedule's
timezone (right across DST), so arq enqueues it at the fire time with the id
``cron:schedule:NAME:FIRE_MS``: however many workers run, a tick is one arq job, and the fire-time
claim in ``worker.schedules.run_store`` makes it one run even so. The queue is not the questions' queue, so a
backlog of questions never delays a summary; the model calls share the questions' semaphore.

A tick missed while no worker was up is run once when a worker starts (``catch_up``), however
many ticks were missed: the latest one stands for them all, its window reaching back to the last run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from arq.cron import CronJob
from arq.worker import func

from common import keys, runs
from common.config import AskqConfig
from common.redis_url import arq_settings
from common.runs import RunPayload, Trigger
from common.schedules import ScheduleConfig
from common.serializer import job_serializer
from worker.context import WorkerContext
from worker.queue.rejections import tolerant_deserializer, unreadable_function
from worker.schedules.run_store import RunStore
from worker.schedules.runs import scheduled_tick, summarize
from worker.settings import on_shutdown, on_startup

log = structlog.get_logger(__name__)

TICK_KEEP_S = 3600
"""arq keeps a tick's result this long, so a worker with a late clock cannot enqueue the tick again."""
SCHEDULE_POLL_S = 1.0
"""How often the schedules worker polls while its wake channel is down. Listening, it waits for
`askq schedule run`'s wake-up, its next cron tick or a tick's deferred time (``worker.queue.idle``)."""
MAX_RUNS_AT_ONCE = 4


@dataclass
class ScheduleCron(CronJob):
    schedule: ScheduleConfig | None = None

    def calculate_next(self, prev_run: datetime) -> None:
        assert self.schedule is not None
        self.next_run = self.schedule.next_fire(prev_run)


def schedule_cron(name: str, schedule: ScheduleConfig) -> ScheduleCron:
    return ScheduleCron(
        name=keys.schedule_cron(name),
        coroutine=scheduled_tick,  # type: ignore[arg-type]  # arq types ctx as a plain dict
        month=None,
        day=None,
        weekday=None,
        hour=None,
        minute=None,
        second=None,
        microsecond=0,
        run_at_startup=False,
        unique=True,
        job_id=None,
        timeout_s=schedule.timeout_s + 60,
        keep_result_s=TICK_KEEP_S,
        keep_result_forever=False,
        max_tries=None,
        schedule=schedule,
    )


async def on_schedules_startup(raw_ctx: dict[str, Any]) -> None:
    await on_startup(raw_ctx)
    await catch_up(cast(WorkerContext, raw_ctx))


async def catch_up(ctx: WorkerContext, now: datetime | None = None) -> list[str]:
    """Enqueue the latest missed tick of each schedule that wants it; the run ids enqueued."""
    now = now or datetime.now(UTC)
    store = RunStore(ctx["redis"], ctx["config"].retention.ttl_s)
    enqueued = []
    for name, schedule in ctx["config"].schedules.items():
        since = await store.first_seen(name)
        if not schedule.catch_up:
            continue
        missed = schedule.previous_fire(now)
        claimed_ms = int((await store.schedule_record(name)).get(runs.LAST_FIRE_MS, 0))
        if missed.timestamp() < since or runs.to_ms(missed) <= claimed_ms:
            continue
        fire_ms = runs.to_ms(missed)
        run_id = runs.run_id(name, missed, Trigger.CATCH_UP)
        payload = RunPayload(schedule=name, run_id=run_id, trigger=Trigger.CATCH_UP, fire_ms=fire_ms)
        # The id arq's cron gives this tick: if it is still queued, this adds nothing.
        await ctx["redis"].enqueue_job(
            keys.SUMMARIZE_FUNCTION,
            payload.model_dump(mode="json"),
            _job_id=runs.stored_as(payload),
            _queue_name=keys.SCHEDULE_QUEUE,
        )
        log.info("catching up a missed tick", schedule=name, fire_at=missed.isoformat())
        enqueued.append(run_id)
    return enqueued


def schedule_worker_settings(
    config: AskqConfig, *, url: str, burst: bool = False, shared: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Keyword arguments for the ``arq.Worker`` that serves the schedules queue."""
    longest_s = max((schedule.timeout_s for schedule in config.schedules.values()), default=3600.0)
    return {
        "functions": [func(summarize, name=keys.SUMMARIZE_FUNCTION), unreadable_function()],  # type: ignore[arg-type]
        "cron_jobs": [schedule_cron(name, schedule) for name, schedule in config.schedules.items()],
        "queue_name": keys.SCHEDULE_QUEUE,
        "redis_settings": arq_settings(url),
        "on_startup": on_schedules_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": MAX_RUNS_AT_ONCE,
        "job_timeout": longest_s + 60,
        "poll_delay": SCHEDULE_POLL_S,
        # `askq schedule run` warns when no worker serves schedules: the record must lapse soon.
        "health_check_interval": 60,
        "keep_result": TICK_KEEP_S,
        "max_tries": 3,
        "job_completion_wait": math.ceil(config.limits.shutdown_grace_s),
        "timezone": UTC,
        "job_serializer": job_serializer,
        "job_deserializer": tolerant_deserializer,
        "ctx": {"config": config, "serves": "schedules", **(shared or {})},
        "burst": burst,
        "handle_signals": False,
    }
