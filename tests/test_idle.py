"""An idle ``askq worker`` waits on its wake-up channel: few Redis commands, and still at once on a
submit, a cancel, or a deferred job coming due.

Each test runs a real ``askq worker`` process. The commands are counted with ``INFO commandstats``
on a private redis-server that nothing else talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from arq.constants import health_check_key_suffix
from redis.asyncio import Redis

from askq.stack import embedded_redis
from common import keys, record
from common.config import AskqConfig, load_config
from common.events import EventType
from producer.control import cancel_batch
from producer.schedules import run_history
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import eventually, logged_events
from tests.test_faults import worker_process
from tests.test_schedule_runs import schedule_config
from worker.queue.askq_worker import AskqWorker
from worker.schedules.settings import schedule_worker_settings
from worker.settings import worker_settings

WINDOW_S = 8.0
"""The quiet window commands are counted over."""
MOST_COMMANDS_PER_S = 3
"""Generous: idle, each of the two workers (questions, schedules) looks at its queue once every
third of a lease (5 s by default), one script call and the one or two commands it makes."""
LONG_LEASE_S = 3600
"""With it, an idle worker's own timer fires after 1200 s at the soonest: what happens sooner was woken."""


def _config_file(tmp_path: Path, **limits: Any) -> Path:
    path = tmp_path / "jobs.yaml"
    schedule = {"cron": "0 7 * * *", "source": {"kind": "answers"}, "prompt": "Sum up.", "catch_up": False}
    config = {"provider": {"max_tokens": 100_000}, "limits": limits, "schedules": {"daily": schedule}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def _idle_and_listening(redis: Redis) -> bool:
    """Both of the process's workers have polled (the health record) and listen for wake-ups."""
    for queue in (keys.QUEUE, keys.SCHEDULE_QUEUE):
        [(_, listening)] = await redis.pubsub_numsub(keys.queue_wake(queue))
        if not listening or not await redis.exists(queue + health_check_key_suffix):
            return False
    return True


async def _calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


async def test_an_idle_worker_sends_a_few_commands_a_second(tmp_path: Path, sim: Simulator) -> None:
    """An idle worker process (questions and schedules) sends at most a few Redis commands a second,
    where polling every poll_delay_s sent about a hundred."""
    config = _config_file(tmp_path)  # the defaults: poll_delay_s 0.05, lease_s 15
    with embedded_redis(tmp_path / "redis") as redis_url:
        redis = Redis.from_url(redis_url)
        try:
            with worker_process(tmp_path, "idle", config, redis_url, sim):
                await eventually(lambda: _idle_and_listening(redis), timeout_s=30)
                before, started = await _calls(redis), time.monotonic()
                await asyncio.sleep(WINDOW_S)  # the window counted over: the worker alone talks to Redis
                sent, elapsed_s = await _calls(redis) - before, time.monotonic() - started
        finally:
            await redis.aclose()
    assert sent <= MOST_COMMANDS_PER_S * elapsed_s, f"{sent} commands in {elapsed_s:.1f} s"


async def test_a_submit_to_an_idle_worker_starts_without_a_timer(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Under the longest poll delay and a lease whose timer fires after 20 minutes, a question
    submitted to an idle worker is answered: the submit's wake-up starts it, no timer could have."""
    config_path = _config_file(tmp_path, poll_delay_s=10, lease_s=LONG_LEASE_S)
    questions = tmp_path / "one.txt"
    questions.write_text("Awake?\n", encoding="utf-8")
    with worker_process(tmp_path, "waiting", config_path, redis_url, sim):
        await eventually(lambda: _idle_and_listening(redis), timeout_s=30)
        for batch in ("first", "second"):  # the second after the worker went back to waiting
            await submit_file(redis, questions, load_config(config_path), batch=batch)

            async def answered(job: str = keys.job_id(batch, "1")) -> bool:
                return await redis.hget(keys.job_record(job), record.STATE) == b"succeeded"

            await eventually(answered, timeout_s=60)


async def test_a_cancel_aborts_a_running_job_of_a_waiting_worker(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A worker waiting for wake-ups with no timer due for 20 minutes still aborts its running job
    on `askq cancel`: the cancel wakes it, and its `cancelled` event ends the job's stream."""
    sim.configure(tokens_per_s=20, answer_tokens=4000)  # 200 s an answer: only an abort ends it sooner
    config_path = _config_file(tmp_path, poll_delay_s=10, lease_s=LONG_LEASE_S)
    questions = tmp_path / "one.txt"
    questions.write_text("A long one?\n", encoding="utf-8")
    with worker_process(tmp_path, "cancelled", config_path, redis_url, sim):
        await eventually(lambda: _idle_and_listening(redis), timeout_s=30)
        await submit_file(redis, questions, load_config(config_path), batch="long")

        async def streaming() -> bool:
            return len(await logged_events(redis, "long:1")) >= 3

        await eventually(streaming, timeout_s=30)
        assert (await cancel_batch(redis, "long", load_config(config_path))).running == 1

        async def aborted() -> bool:
            events = await logged_events(redis, "long:1")
            return events[-1].type is EventType.CANCELLED

        await eventually(aborted, timeout_s=60)  # the answer alone would take 200 s
        assert not await redis.exists(keys.arq_in_progress("long:1"))
        assert EventType.DONE not in [event.type for event in await logged_events(redis, "long:1")]


async def test_a_deferred_job_starts_when_due_with_no_one_announcing_it(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A deferred job (its queue score a few seconds ahead, as arq's retries and cron ticks write it)
    that a waiting worker has seen starts once due, and not before: its score sets the worker's timer,
    where the worker's own timer is 20 minutes off and nothing wakes it at the due time."""
    config_path = _config_file(tmp_path, poll_delay_s=10, lease_s=LONG_LEASE_S)
    questions = tmp_path / "one.txt"
    questions.write_text("Later?\n", encoding="utf-8")
    await submit_file(redis, questions, load_config(config_path), batch="later")
    await redis.zadd(keys.QUEUE, {"later:1": time.time() * 1000 + 3_600_000})  # not due for an hour
    with worker_process(tmp_path, "deferred", config_path, redis_url, sim):
        await eventually(lambda: _idle_and_listening(redis), timeout_s=30)
        due_ms = time.time() * 1000 + 3000
        await redis.zadd(keys.QUEUE, {"later:1": due_ms})
        await redis.publish(keys.queue_wake(keys.QUEUE), b"")  # the worker looks, and sees it deferred

        async def answered() -> bool:
            return await redis.hget(keys.job_record("later:1"), record.STATE) == b"succeeded"

        await eventually(answered, timeout_s=60)
    started_at = await redis.hget(keys.job_record("later:1"), record.STARTED_AT)
    assert float(started_at) * 1000 >= due_ms


async def test_a_worker_no_wake_up_can_reach_polls_on_its_delay(tmp_path: Path, sim: Simulator) -> None:
    """With the wake channels refused (an ACL without them), a worker polls every poll_delay_s: a
    submit is answered although no wake-up reaches the worker and its idle timer is 20 minutes off."""
    config_path = _config_file(tmp_path, poll_delay_s=0.2, lease_s=LONG_LEASE_S)
    questions = tmp_path / "one.txt"
    questions.write_text("Deaf?\n", encoding="utf-8")
    with embedded_redis(tmp_path / "redis") as admin_url:
        admin = Redis.from_url(admin_url)
        channels = ["resetchannels", f"&{keys.PREFIX}:batch:*", f"&{keys.PREFIX}:events:*"]
        await admin.execute_command("ACL", "SETUSER", "deaf", "reset", "on", ">pw", "~*", *channels, "+@all")
        url = admin_url.replace("redis://", "redis://deaf:pw@")
        redis = Redis.from_url(url)
        try:
            with worker_process(tmp_path, "deaf", config_path, url, sim):
                await eventually(lambda: redis.exists(keys.QUEUE + health_check_key_suffix), timeout_s=30)
                await submit_file(redis, questions, load_config(config_path), batch="deaf")

                async def answered() -> bool:
                    return await redis.hget(keys.job_record("deaf:1"), record.STATE) == b"succeeded"

                await eventually(answered, timeout_s=60)
                [(_, listening)] = await admin.pubsub_numsub(keys.queue_wake(keys.QUEUE))
                assert listening == 0
        finally:
            await redis.aclose()
            await admin.aclose()


async def test_a_cron_tick_fires_on_a_waiting_schedules_worker(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A schedules worker waiting for wake-ups, its own timer 20 minutes off, runs a tick due in a
    few seconds: the tick's time sets its timer (arq enqueues the tick ahead, deferred to it)."""
    config = schedule_config(tmp_path / "out", catch_up=False)
    config = config.model_copy(update={"limits": config.limits.model_copy(update={"lease_s": LONG_LEASE_S})})
    settings = schedule_worker_settings(config, url=redis_url)
    # Its health record's timer an hour off too: the tick's is the only one that could fire.
    worker = AskqWorker(**{**settings, "health_check_interval": 3600, "handle_signals": False})
    running = asyncio.create_task(worker.main())
    try:

        async def waiting() -> bool:
            [(_, listening)] = await redis.pubsub_numsub(keys.queue_wake(keys.SCHEDULE_QUEUE))
            return bool(listening) and bool(await redis.exists(keys.SCHEDULE_QUEUE + health_check_key_suffix))

        await eventually(waiting, timeout_s=30)
        [cron] = worker.cron_jobs
        cron.next_run = datetime.now(UTC) + timedelta(seconds=3)  # tomorrow's tick, brought forward
        await redis.publish(keys.queue_wake(keys.SCHEDULE_QUEUE), b"")  # the worker sees the new time

        async def ran() -> bool:
            history = await run_history(redis, config, "nightly", 10)
            return [(entry["trigger"], entry["state"]) for entry in history] == [("scheduled", "succeeded")]

        await eventually(ran, timeout_s=60)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()


async def test_a_claim_stopped_at_its_read_limit_goes_on_without_a_timer(
    redis: Redis, redis_url: str, config: AskqConfig, sim: Simulator, tmp_path: Path
) -> None:
    """A waiting worker woken by a submit whose claim stops at its read limit among other workers'
    running jobs reads on at once, and finds the question behind them: no timer is due for 20 minutes."""
    config = config.model_copy(update={"limits": config.limits.model_copy(update={"lease_s": LONG_LEASE_S})})
    settings = worker_settings(config, url=redis_url)
    look_at = 5 * settings["max_jobs"]  # what arq reads per poll, and a claim looks at
    worker = AskqWorker(**{**settings, "queue_read_limit": look_at, "handle_signals": False})
    running = asyncio.create_task(worker.main())
    try:

        async def waiting() -> bool:
            [(_, listening)] = await redis.pubsub_numsub(keys.queue_wake(keys.QUEUE))
            return bool(listening) and bool(await redis.exists(keys.QUEUE + health_check_key_suffix))

        await eventually(waiting, timeout_s=30)
        async with redis.pipeline(transaction=False) as pipe:
            for index in range(2 * look_at):  # running on other workers, ahead of the question
                pipe.zadd(keys.QUEUE, {f"elsewhere-{index}": time.time() * 1000 - 60_000 + index})
                pipe.set(keys.arq_in_progress(f"elsewhere-{index}"), b"1", px=600_000)
            await pipe.execute()
        questions = tmp_path / "one.txt"
        questions.write_text("Behind them all?\n", encoding="utf-8")
        await submit_file(redis, questions, config, batch="behind")

        async def answered() -> bool:
            return await redis.hget(keys.job_record("behind:1"), record.STATE) == b"succeeded"

        await eventually(answered, timeout_s=60)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
