"""askq's arq worker: jobs claimed in one round trip, and an idle worker woken by a producer."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from arq.connections import create_pool
from arq.constants import health_check_key_suffix
from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from common.redis_url import arq_settings
from producer.submit import submit_file
from tests.helpers import eventually, results, run_burst_worker
from worker.queue.askq_worker import AskqWorker
from worker.queue.claims import PAGE, JobClaims
from worker.queue.leases import LeaseKeeper
from worker.settings import worker_settings

NOW_MS = 1_000_000


async def _queue(redis: Redis, **scores: int) -> None:
    await redis.zadd(keys.QUEUE, scores)


class TestJobClaims:
    async def test_each_job_is_claimed_once_across_claimers(self, redis: Redis) -> None:
        """Two workers claiming from the same queue get every due job once, oldest first."""
        await _queue(redis, **{f"j{index}": NOW_MS - index for index in range(10)})
        first = await JobClaims(redis, keys.QUEUE, 5000, look_at=100, rewalk_s=0).claim(6, NOW_MS)
        second = await JobClaims(redis, keys.QUEUE, 5000, look_at=100, rewalk_s=0).claim(6, NOW_MS)
        assert [job for job, _ in first] == [f"j{index}" for index in (9, 8, 7, 6, 5, 4)]
        assert sorted(job for job, _ in first + second) == sorted(f"j{index}" for index in range(10))
        assert dict(first)["j9"] == NOW_MS - 9

    async def test_running_and_future_jobs_are_passed_over(self, redis: Redis) -> None:
        """A job in progress anywhere and one not yet due are not claimed."""
        await _queue(redis, running=NOW_MS - 1, later=NOW_MS + 1, due=NOW_MS)
        await redis.set(keys.arq_in_progress("running"), b"1")
        assert await JobClaims(redis, keys.QUEUE, 5000, look_at=100, rewalk_s=0).claim(9, NOW_MS) == [
            ("due", NOW_MS)
        ]

    async def test_a_claim_reads_past_pages_of_running_jobs(self, redis: Redis) -> None:
        """Running jobs filling the queue's first pages do not hide the due jobs behind them."""
        running = {f"r{index}": NOW_MS - 10_000 + index for index in range(PAGE * 2 + 5)}
        await _queue(redis, **running, due=NOW_MS)
        for job_id in running:
            await redis.set(keys.arq_in_progress(job_id), b"1")
        assert await JobClaims(redis, keys.QUEUE, 5000, look_at=10_000, rewalk_s=0).claim(1, NOW_MS) == [
            ("due", NOW_MS)
        ]
        assert await JobClaims(redis, keys.QUEUE, 5000, look_at=PAGE, rewalk_s=0).claim(1, NOW_MS) == []

    async def test_a_claim_lasts_the_lease(self, redis: Redis) -> None:
        """The in-progress key is set with the claim's expiry, so a dead worker's jobs come back."""
        await _queue(redis, job=NOW_MS)
        await JobClaims(redis, keys.QUEUE, 4000, look_at=100, rewalk_s=0).claim(1, NOW_MS)
        assert 3000 < await redis.pttl(keys.arq_in_progress("job")) <= 4000

    async def test_a_claim_starts_at_the_running_jobs_it_saw_last(self, redis: Redis) -> None:
        """The second claim reads from where the first found only running jobs, not from the head again."""
        running = {f"r{index}": NOW_MS - 100 + index for index in range(50)}
        await _queue(redis, **running, first=NOW_MS - 10)
        for job_id in running:
            await redis.set(keys.arq_in_progress(job_id), b"1")
        claims = JobClaims(redis, keys.QUEUE, 5000, look_at=1000, rewalk_s=3600)
        assert await claims.claim(1, NOW_MS) == [("first", NOW_MS - 10)]
        await _queue(redis, second=NOW_MS - 5)
        await redis.config_resetstat()
        assert await claims.claim(1, NOW_MS) == [("second", NOW_MS - 5)]
        stats = await redis.info("commandstats")
        assert stats["cmdstat_exists"]["calls"] <= 3  # "first" (now running) and "second", not 52

    async def test_a_job_freed_behind_the_running_ones_is_found_by_a_full_read(self, redis: Redis) -> None:
        """A job whose worker died (its claim expired) behind the read's start comes back once the
        queue is read from its head again, every ``rewalk_s``."""
        await _queue(redis, lost=NOW_MS - 20, due=NOW_MS - 10)
        await redis.set(keys.arq_in_progress("lost"), b"1")
        now_s = [0.0]
        claims = JobClaims(redis, keys.QUEUE, 5000, look_at=1000, rewalk_s=5, clock=lambda: now_s[0])
        assert await claims.claim(5, NOW_MS) == [("due", NOW_MS - 10)]
        await redis.delete(keys.arq_in_progress("lost"))
        now_s[0] = 4.9
        assert await claims.claim(5, NOW_MS) == []
        now_s[0] = 5.0
        assert await claims.claim(5, NOW_MS) == [("lost", NOW_MS - 20)]


class TestLeaseKeeper:
    async def test_arq_s_long_claim_is_shortened_to_the_lease_at_start(self, redis: Redis) -> None:
        """Under arq's own worker class the job-timeout-long key becomes a lease as the job starts."""
        await redis.set(keys.arq_in_progress("job"), b"1", px=600_000)
        async with LeaseKeeper(redis, 4.0).hold("job"):
            assert 3000 < await redis.pttl(keys.arq_in_progress("job")) <= 4000

    async def test_a_claim_that_set_the_lease_costs_no_round_trip(self, redis: Redis) -> None:
        """With AskqWorker's leased claims, starting a job leaves the key as the claim set it."""
        await redis.set(keys.arq_in_progress("job"), b"1", px=600_000)
        async with LeaseKeeper(redis, 4.0, claims_lease=True).hold("job"):
            assert await redis.pttl(keys.arq_in_progress("job")) > 4000


@contextlib.asynccontextmanager
async def _running_worker(config: AskqConfig, redis_url: str, **overrides: Any) -> Any:
    settings = {**worker_settings(config, url=redis_url), "handle_signals": False, **overrides}
    worker = AskqWorker(**settings)
    task = asyncio.create_task(worker.main())
    try:
        yield worker
    finally:
        # A job can still be inside arq's own finishing after its record says it ended; close()
        # would cancel it mid-way, so let running jobs end first.
        running = [job for job in worker.tasks.values() if not job.done()]
        if running:
            await asyncio.wait(running, timeout=10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def test_an_idle_worker_starts_a_new_job_without_waiting_for_its_poll_delay(
    redis: Redis, redis_url: str, config: AskqConfig, sim: Any, tmp_path: Path
) -> None:
    """With a 60 s poll delay, a submitted question is answered at once: the producer wakes the worker."""
    async with _running_worker(config, redis_url, poll_delay=60):

        async def polled_once_and_listening() -> bool:
            # The health record is written by the first poll: after it, only a wake-up starts a job.
            subscribers = await redis.pubsub_numsub(keys.queue_wake(keys.QUEUE))
            return bool(subscribers[0][1]) and bool(await redis.exists(keys.QUEUE + health_check_key_suffix))

        await eventually(polled_once_and_listening)
        path = tmp_path / "one.txt"
        path.write_text("Wake up?\n", encoding="utf-8")
        report = await submit_file(redis, path, config, batch="wake")
        assert report.enqueued == 1

        async def answered() -> bool:
            return await redis.hget(keys.job_record("wake:1"), record.STATE) == b"succeeded"

        await eventually(answered, timeout_s=20)


async def test_a_job_handed_back_behind_a_worker_s_reading_point_starts_at_once(
    redis: Redis, redis_url: str, config: AskqConfig, sim: Any, tmp_path: Path
) -> None:
    """A job handed back at its old place in the queue (its worker stopping) is claimed at once by a
    worker whose claims already start past it, not after that worker's next read from the head."""
    path = tmp_path / "two.txt"
    path.write_text("Held, then handed back?\nStill held?\n", encoding="utf-8")
    await submit_file(redis, path, config, batch="back")
    for job_id in ("back:1", "back:2"):
        await redis.set(keys.arq_in_progress(job_id), b"1")  # running on a worker about to stop
    long_lease = config.model_copy(update={"limits": config.limits.model_copy(update={"lease_s": 600})})
    async with _running_worker(long_lease, redis_url, poll_delay=60):
        await eventually(lambda: redis.exists(keys.QUEUE + health_check_key_suffix))  # read past both
        await redis.delete(keys.arq_in_progress("back:1"))
        await redis.publish(keys.queue_wake(keys.QUEUE), keys.WAKE_FROM_HEAD)

        async def answered() -> bool:
            return await redis.hget(keys.job_record("back:1"), record.STATE) == b"succeeded"

        await eventually(answered, timeout_s=20)
    assert await redis.hget(keys.job_record("back:2"), record.STATE) == b"queued"


@contextlib.asynccontextmanager
async def _idle_worker(config: AskqConfig, redis_url: str) -> Any:
    """An AskqWorker with its pool, not polling: a test drives its methods directly."""
    pool = await create_pool(arq_settings(redis_url))
    settings = {**worker_settings(config, url=redis_url), "handle_signals": False}
    try:
        yield AskqWorker(**settings, redis_pool=pool)
    finally:
        await pool.aclose()


async def test_a_worker_handing_a_job_back_tells_the_others_to_read_from_the_head(
    redis: Redis, redis_url: str, config: AskqConfig
) -> None:
    """arq's finish of a job to be run again (not finished) publishes the read-from-head wake-up."""
    async with _idle_worker(config, redis_url) as worker, redis.pubsub() as pubsub:
        await pubsub.subscribe(keys.queue_wake(keys.QUEUE))
        await pubsub.get_message(timeout=5)  # the subscription's confirmation
        await worker.finish_job("job", False, None, None, False, None, None)
        message = await pubsub.get_message(timeout=5)
    assert message is not None
    assert message["data"] == keys.WAKE_FROM_HEAD


async def test_a_finished_job_leaves_arq_nothing_to_finish(
    redis: Redis, redis_url: str, config: AskqConfig, sim: Any, tmp_path: Path
) -> None:
    """The transition that records a job's result also removes its arq keys and queue entry."""
    path = tmp_path / "three.txt"
    path.write_text("One?\nTwo?\nThree?\n", encoding="utf-8")
    await submit_file(redis, path, config, batch="done")
    await run_burst_worker(config, redis_url)
    assert {row.status for row in await results(redis, "done")} == {"succeeded"}
    assert await redis.zcard(keys.QUEUE) == 0
    for n in (1, 2, 3):
        job_id = f"done:{n}"
        for key in (keys.arq_job(job_id), keys.arq_in_progress(job_id), keys.arq_retry(job_id)):
            assert not await redis.exists(key)


async def test_arq_s_finishing_of_a_released_job_sends_nothing(
    redis: Redis, redis_url: str, config: AskqConfig
) -> None:
    """For a job the finish transition released, arq's finishing is skipped; another job ending
    for good (aborted, rejected) is finished in one guarded script call; one handed back to run
    again goes through arq's own transaction."""
    async with _idle_worker(config, redis_url) as worker:
        worker.ctx["released"].add("released")
        await redis.config_resetstat()
        await worker.finish_job("released", True, None, None, False, None, None)
        assert set(await redis.info("commandstats")) <= {"cmdstat_config"}  # the reset itself
        await worker.finish_job("other", True, None, None, False, None, None)
        stats = await redis.info("commandstats")
        evalsha = stats["cmdstat_evalsha"]  # the first call may fail (NOSCRIPT) and load the script
        assert evalsha["calls"] - evalsha.get("failed_calls", 0) == 1
        assert "cmdstat_exec" not in stats
        await worker.finish_job("handed-back", False, None, None, False, None, None)
        assert (await redis.info("commandstats"))["cmdstat_exec"]["calls"] == 1
        assert not worker.ctx["released"]


async def test_a_job_claimed_again_after_its_run_ended_here_is_started(
    redis: Redis, redis_url: str, config: AskqConfig
) -> None:
    """A job retried just after its run here ended (its task done, not yet swept by arq) is started
    again, not passed over as still running with a fresh claim holding it for a lease."""
    async with _idle_worker(config, redis_url) as worker:
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ended.set_result(None)
        worker.tasks["again"] = ended  # type: ignore[assignment]
        await _queue(redis, again=NOW_MS)
        await worker.start_jobs([b"again"])
        started = worker.tasks["again"]
        assert started is not ended
        await started  # arq finds no job data for it and records that; enough that it ran


class TestConcurrencyOption:
    def test_concurrency_keeps_a_job_waiting_behind_every_slot(self) -> None:
        """--concurrency N holds 2N jobs, as the defaults do (32, 64): a freed slot is filled at once."""
        settings = worker_settings(AskqConfig(), url="redis://localhost", concurrency=200)
        assert settings["max_jobs"] == 400
        assert settings["ctx"]["config"].limits.concurrency == 200

    def test_concurrency_never_lowers_a_configured_max_jobs(self) -> None:
        """A max_jobs set above twice the slots in jobs.yaml is kept."""
        config = AskqConfig.model_validate({"limits": {"max_jobs": 1000}})
        assert worker_settings(config, url="redis://localhost", concurrency=10)["max_jobs"] == 1000
