"""A Redis stall longer than the lease: a job's copy started elsewhere never shares its seq numbers
with the run it replaced, and the stored result stays single."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from askq.stack import embedded_redis
from common.events import StreamEvent
from common.status import JobState
from producer.batches import batch_status
from producer.tail import follow_job
from tests.conftest import Simulator
from tests.helpers import eventually, final_text, results, seqs_reused
from tests.test_faults import _config_file, _logged, _streaming_jobs, _submit_n, worker_process

LEASE_S = 2
STALL_S = LEASE_S + 3
JOBS = 4


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test alone: it is stopped with SIGSTOP."""
    with embedded_redis(tmp_path / "redis") as url:
        yield url


@pytest.mark.parametrize("paused", ["redis", "worker"])
async def test_a_stall_past_the_lease_never_reuses_a_seq(
    paused: str, private_redis: str, sim: Simulator, tmp_path: Path
) -> None:
    """Redis, or the worker streaming, stopped for longer than the lease, with an idle worker ready to
    claim: whichever worker runs each job afterwards, no seq is used for two different events, a
    reader following each job gets the stored answer whole, and each job has one result. A paused
    worker finds its leases taken when it wakes, stops its copies and says so."""
    sim.configure(ttft_ms=20, tokens_per_s=20, answer_tokens=200)  # 10 s answers
    config = _config_file(tmp_path, lease_s=LEASE_S, concurrency=JOBS, max_jobs=JOBS)
    _submit_n(tmp_path, private_redis, config, "stall", JOBS)
    redis = Redis.from_url(private_redis)
    with worker_process(tmp_path, "a", config, private_redis, sim) as first:
        pid = int((await redis.info("server"))["process_id"]) if paused == "redis" else first.pid
        await eventually(lambda: _all_streaming(redis, "stall"), timeout_s=30)
        with worker_process(tmp_path, "b", config, private_redis, sim):
            await eventually(lambda: _logged(tmp_path / "b.log", "worker started"), timeout_s=30)
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(STALL_S)  # the fault itself: Redis answers nothing for this long
            finally:
                os.kill(pid, signal.SIGCONT)
            sim.configure(tokens_per_s=0)
            await eventually(lambda: _done(redis, "stall"), timeout_s=60)
    rows = await results(redis, "stall")
    assert [row.status for row in rows] == ["succeeded"] * JOBS, [(row.item_id, row.error) for row in rows]
    assert (await batch_status(redis, "stall")).counts[JobState.SUCCEEDED] == JOBS
    for row in rows:
        reused = await seqs_reused(redis, row.job_id)
        assert not reused, f"{row.job_id}: seqs used for different events: {reused}"
        items = [item async for item in follow_job(redis, row.job_id)]
        events = [item for item in items if isinstance(item, StreamEvent)]
        assert len(events) == len(items), f"{row.job_id}: a gap or a fallback: {items[-3:]}"
        assert final_text(events) == row.answer
    await redis.aclose()
    if paused == "worker":  # its leases expired with nobody to renew them: the idle worker took over
        assert await _logged(tmp_path / "b.log", "job finished"), "the idle worker never ran a copy"
        assert await _logged(tmp_path / "a.log", "lease lost")


async def _all_streaming(redis: Redis, batch: str) -> bool:
    return len(await _streaming_jobs(redis, batch, 3)) == JOBS


async def _done(redis: Redis, batch: str) -> bool:
    return (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).done
