"""Jobs per second and CPU per job: askq's workers, or the baseline script, on one mix.

Both sides get a fresh redis-server and simulator and the same questions. askq's time runs from
the start of ``submit`` to the last job's recorded finish; the script's from its first call to its
last answer (its start-up excluded, as askq's workers are started before the clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.mixes import Mix
from bench.procs import askq_workers, cpu_s, redis_cpu_s, wait_listening, write_config
from common import keys, record
from common.config import load_config
from producer.batches import batch_status
from producer.submit import submit_file

BATCH = "bench"


def sim_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_sim/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def questions_file(folder: Path, mix: Mix) -> Path:
    path = folder / f"{mix.name}.txt"
    path.write_text("".join(f"{mix.name} question {index}?\n" for index in range(mix.jobs)), encoding="utf-8")
    return path


async def command_counts(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def _wait_done(redis: Redis, jobs: int) -> int:
    """Polls the batch until every job is finished; returns the completion tokens."""
    while True:
        status = await batch_status(redis, BATCH, with_job_ids=False)
        if status.done and status.total == jobs:
            return status.completion_tokens
        await asyncio.sleep(0.05)  # the finish time comes from the records, not from this poll


async def job_times(redis: Redis, job_ids: list[bytes]) -> npt.NDArray[np.float64]:
    """Each job's (started_at, finished_at), from its record."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(keys.job_record(job_id.decode()), [record.STARTED_AT, record.FINISHED_AT])
        return np.array([[float(started), float(finished)] for started, finished in await pipe.execute()])


def steady_rate(times: npt.NDArray[np.float64], provider_s: float) -> float:
    """Jobs finished per second while every slot was busy: from the end of the first answers (the
    first start plus 1.5 answers' time) to the last job's start, after which the slots only drain.

    This is the rate the bound describes (Little's law: slots over time per job); the run's own
    rate also holds the ramp-up and the drain, which depend on how many jobs a run has.
    """
    window_start, window_end = times[:, 0].min() + 1.5 * provider_s, times[:, 0].max()
    if window_end - window_start < 2 * provider_s:
        return float("nan")  # too few jobs for a steady stretch
    finished = ((times[:, 1] >= window_start) & (times[:, 1] < window_end)).sum()
    return float(finished / (window_end - window_start))


async def steady_jobs_per_s(redis: Redis, provider_s: float) -> float:
    """``steady_rate`` of every finished job."""
    return steady_rate(await job_times(redis, await redis.zrange(keys.FINISHED, 0, -1)), provider_s)


async def _measure_askq(redis: Redis, mix: Mix, path: Path, pids: list[int], base_url: str) -> dict[str, Any]:
    await redis.config_resetstat()
    sim_before = sim_stats(base_url)["process_cpu_s"]
    memory_before = (await redis.info("memory"))["used_memory"]
    cpu_before, redis_before = sum(cpu_s(pid) for pid in pids), await redis_cpu_s(redis)
    started = time.time()
    await submit_file(redis, path, load_config(), batch=BATCH)
    tokens = await _wait_done(redis, mix.jobs)
    [(_, last_finish)] = await redis.zrevrange(keys.FINISHED, 0, 0, withscores=True)
    counts = await command_counts(redis)
    for polling in ("info", "config|resetstat", "hgetall", "hmget", "lrange", "zcard", "zrevrange"):
        counts.pop(polling, None)  # this benchmark's own reads
    elapsed_s = last_finish - started
    worker_cpu = sum(cpu_s(pid) for pid in pids) - cpu_before
    redis_cpu = await redis_cpu_s(redis) - redis_before
    sim_cpu = sim_stats(base_url)["process_cpu_s"] - sim_before
    return {
        "jobs": mix.jobs,
        "elapsed_s": elapsed_s,
        "jobs_per_s": mix.jobs / elapsed_s,
        "steady_jobs_per_s": await steady_jobs_per_s(redis, mix.provider_s),
        "worker_cpu_ms_per_job": worker_cpu * 1000 / mix.jobs,
        "redis_cpu_ms_per_job": redis_cpu * 1000 / mix.jobs,
        "cpu_ms_per_job": (worker_cpu + redis_cpu) * 1000 / mix.jobs,
        "simulator_cpu_ms_per_job": sim_cpu * 1000 / mix.jobs,
        "completion_tokens": tokens,
        "commands_per_1000_tokens": sum(counts.values()) * 1000 / tokens,
        "publish_commands_per_1000_tokens": (counts.get("xadd", 0) + counts.get("publish", 0))
        * 1000
        / tokens,
        "redis_bytes_per_job": ((await redis.info("memory"))["used_memory"] - memory_before) / mix.jobs,
    }


async def run_askq(mix: Mix, folder: Path) -> dict[str, Any]:
    path = questions_file(folder, mix)
    config_path = write_config(folder, mix.askq_config())
    with (
        embedded_redis(folder / f"redis-{mix.name}-{mix.workers}") as redis_url,
        simulator_process(*mix.simulator_flags()) as base_url,
        askq_workers(mix.workers, redis_url, base_url, config_path, mix.concurrency) as workers,
    ):
        redis = Redis.from_url(redis_url)
        try:
            await wait_listening(redis, mix.workers)
            result = await _measure_askq(redis, mix, path, [worker.pid for worker in workers], base_url)
        finally:
            await redis.aclose()
        stats = sim_stats(base_url)
        result["refused_429"] = stats["responses_by_status"].get("429", 0)
        result["requests"] = stats["requests_total"]
    return result


def run_baseline(mix: Mix, folder: Path) -> dict[str, Any]:
    path = questions_file(folder, mix)
    with simulator_process(*mix.simulator_flags()) as base_url:
        env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "bench"}
        sim_before = sim_stats(base_url)["process_cpu_s"]
        command = [sys.executable, "-m", "bench.baseline", str(path), "--concurrency", str(mix.concurrency)]
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        result: dict[str, Any] = json.loads(output)
        stats = sim_stats(base_url)
        result["refused_429"] = stats["responses_by_status"].get("429", 0)
        result["simulator_cpu_ms_per_job"] = (stats["process_cpu_s"] - sim_before) * 1000 / result["jobs"]
    result["jobs_per_s"] = result["jobs"] / result["elapsed_s"]
    result["cpu_ms_per_job"] = result["cpu_s"] * 1000 / result["jobs"]
    return result
