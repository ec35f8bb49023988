"""When scheduled runs happen: one run per tick across workers, and a missed tick caught up once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arq import create_pool
from redis.asyncio import Redis

from common import keys, runs
from common.config import AskqConfig
from common.redis_url import arq_settings
from common.serializer import job_deserializer, job_serializer
from producer.schedules import run_history
from tests.conftest import Simulator
from tests.helpers import run_burst_schedule_worker
from tests.test_schedule_runs import schedule_config
from worker.queue.askq_worker import AskqWorker
from worker.schedules.settings import schedule_worker_settings


async def burst_worker_on_own_pool(config: AskqConfig, redis_url: str) -> AskqWorker:
    pool = await create_pool(
        arq_settings(redis_url), job_serializer=job_serializer, job_deserializer=job_deserializer
    )
    settings = schedule_worker_settings(config, url=redis_url, burst=True)
    return AskqWorker(**{**settings, "redis_pool": pool})


async def test_two_workers_seeing_one_tick_give_one_run(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Both workers' arq cron enqueue the same tick; it runs once and writes one file."""
    config = schedule_config(tmp_path / "out")
    schedule = config.schedules["nightly"]
    fire = schedule.previous_fire(datetime.now(UTC))
    workers = [await burst_worker_on_own_pool(config, redis_url) for _ in range(2)]

    for worker in workers:
        # arq's own cron step, at two moments: first it plans the tick, then it is due.
        await worker.run_cron(fire - timedelta(minutes=5), 0.5)
        await worker.run_cron(fire - timedelta(seconds=0.2), 0.5)
    queued = await redis.zrange(keys.SCHEDULE_QUEUE, 0, -1)
    await asyncio.gather(*(worker.main() for worker in workers))
    for worker in workers:
        await worker.close()

    assert queued == [f"{keys.schedule_cron('nightly')}:{runs.to_ms(fire)}".encode()]
    history = await run_history(redis, config, "nightly", 10)
    assert [(entry["trigger"], entry["state"]) for entry in history] == [("scheduled", "succeeded")]
    assert history[0]["fire_at"] == fire.astimezone(schedule.zone).isoformat()
    assert sum(worker.jobs_complete for worker in workers) == 1
    assert len(list((tmp_path / "out" / "nightly").iterdir())) == 1


async def test_a_tick_enqueued_twice_still_runs_once(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Past arq's de-duplication (the same fire time's job enqueued again after the first ran), the
    fire-time claim holds: one run, one history entry."""
    config = schedule_config(tmp_path / "out")
    fire = config.schedules["nightly"].previous_fire(datetime.now(UTC))
    payload = runs.RunPayload(
        schedule="nightly",
        run_id=runs.run_id("nightly", fire, runs.Trigger.CATCH_UP),
        trigger=runs.Trigger.CATCH_UP,
        fire_ms=runs.to_ms(fire),
    )
    stored_as = runs.stored_as(payload)
    assert stored_as is not None
    for _ in range(2):
        await redis.delete(keys.ARQ_RESULT_PREFIX + stored_as)  # arq's memory of the tick, lapsed
        pool = await create_pool(arq_settings(redis_url), job_serializer=job_serializer)
        job = await pool.enqueue_job(
            keys.SUMMARIZE_FUNCTION,
            payload.model_dump(mode="json"),
            _job_id=stored_as,
            _queue_name=keys.SCHEDULE_QUEUE,
        )
        await pool.aclose()
        assert job is not None  # enqueued both times: only the fire-time claim stands in the way
        await run_burst_schedule_worker(config, redis_url)

    history = await run_history(redis, config, "nightly", 10)
    assert len(history) == 1
    assert await redis.xlen(keys.REJECTED) == 0


async def test_a_missed_tick_is_caught_up_once_when_a_worker_starts(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Three days without a worker give one catch-up run, for the latest tick; a restart adds none."""
    config = schedule_config(tmp_path / "out")
    three_days_ago = time.time() - 3 * 86_400
    await redis.hset(keys.schedule_record("nightly"), runs.SINCE, str(three_days_ago))

    await run_burst_schedule_worker(config, redis_url)
    await run_burst_schedule_worker(config, redis_url)

    history = await run_history(redis, config, "nightly", 10)
    assert [(entry["trigger"], entry["state"]) for entry in history] == [("catch-up", "succeeded")]
    latest = config.schedules["nightly"].previous_fire(datetime.now(UTC))
    assert history[0]["fire_at"] == latest.astimezone(config.schedules["nightly"].zone).isoformat()


async def test_catch_up_can_be_turned_off_and_a_new_schedule_has_nothing_to_catch_up(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """catch_up: false skips the missed tick; a schedule first seen now has missed nothing."""
    await redis.hset(keys.schedule_record("nightly"), runs.SINCE, str(time.time() - 3 * 86_400))
    await run_burst_schedule_worker(schedule_config(tmp_path / "out", catch_up=False), redis_url)
    assert await run_history(redis, schedule_config(tmp_path / "out"), "nightly", 10) == []

    await redis.flushdb()
    await run_burst_schedule_worker(schedule_config(tmp_path / "out"), redis_url)
    assert await run_history(redis, schedule_config(tmp_path / "out"), "nightly", 10) == []
    assert await redis.hget(keys.schedule_record("nightly"), runs.SINCE) is not None
