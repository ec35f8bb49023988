"""Queue overhead: no-op jobs through askq's worker and through arq's defaults, in one run.

Throughput: the jobs are queued first, then one worker process runs them all. Pick-up: jobs are
queued one at a time, 5 ms apart, into an idle worker; askq's enqueue wakes it as ``askq submit``
does, arq's does not.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from arq.constants import health_check_key_suffix
from redis.asyncio import Redis

from askq.stack import embedded_redis, stop
from bench.noop import NOOP, RESULT
from bench.procs import READY_TIMEOUT_S
from common import keys
from common.serializer import job_serializer

PICKUP_GAP_S = 0.005


def _noop_worker(mode: str, redis_url: str, jobs: int) -> subprocess.Popen[str]:
    # askq's worker builds its provider client at start; no-op jobs never call it.
    env = {**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "ASKQ_CONFIG": os.devnull}
    command = [sys.executable, "-m", "bench.noop", mode, redis_url, str(jobs)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _queue_job(pipe: Any, index: int) -> None:
    now = time.time()
    job_id = f"noop-{index}"
    job: dict[str, Any] = {"t": None, "f": NOOP, "a": [now], "k": {}, "et": int(now * 1000)}
    pipe.set(keys.arq_job(job_id), job_serializer(job), px=3_600_000)
    pipe.zadd(keys.QUEUE, {job_id: int(now * 1000)})


async def _queue_all(redis: Redis, jobs: int) -> None:
    for start in range(0, jobs, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for index in range(start, min(start + 1000, jobs)):
                _queue_job(pipe, index)
            await pipe.execute()


async def _wait_polled(redis: Redis) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not await redis.exists(keys.QUEUE + health_check_key_suffix):
        if time.monotonic() > deadline:
            raise RuntimeError("the no-op worker did not start")
        await asyncio.sleep(0.02)  # polling a starting process up to the deadline above


async def _queue_spaced(redis: Redis, jobs: int, *, wake: bool) -> None:
    for index in range(jobs):
        async with redis.pipeline(transaction=False) as pipe:
            _queue_job(pipe, index)
            if wake:
                pipe.publish(keys.queue_wake(keys.QUEUE), b"")
            await pipe.execute()
        await asyncio.sleep(PICKUP_GAP_S)  # the arrival rate of this phase, not a synchronisation


def _finish(worker: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        output, _ = worker.communicate(timeout=900)
    finally:
        stop(worker)
    # The worker logs to stdout too; its result is the line marked as such.
    line = next(line for line in output.splitlines() if line.startswith(RESULT))
    result: dict[str, Any] = json.loads(line.removeprefix(RESULT))
    return result


async def throughput(mode: str, redis_url: str, jobs: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await _queue_all(redis, jobs)
    await redis.aclose()
    result = _finish(_noop_worker(mode, redis_url, jobs))
    return {"jobs": jobs, "jobs_per_s": jobs / result["span_s"]}


async def pickup(mode: str, redis_url: str, jobs: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    worker = _noop_worker(mode, redis_url, jobs)
    try:
        await _wait_polled(redis)
        await _queue_spaced(redis, jobs, wake=mode == "askq")
    finally:
        await redis.aclose()
    p50, p99 = np.percentile(_finish(worker)["pickups_ms"], [50, 99])
    return {"pickup_p50_ms": float(p50), "pickup_p99_ms": float(p99)}


async def run_queue(folder: Path, jobs: int, arq_jobs: int, pickups: int) -> dict[str, Any]:
    with embedded_redis(folder / "redis-queue") as redis_url:
        results: dict[str, Any] = {}
        for mode, count in (("askq", jobs), ("arq", arq_jobs)):
            results[mode] = await throughput(mode, redis_url, count) | await pickup(mode, redis_url, pickups)
        results["speedup"] = results["askq"]["jobs_per_s"] / results["arq"]["jobs_per_s"]
        return results
