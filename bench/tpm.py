"""The tpm section: a batch against the simulator's token bucket, with askq paced either from the
bucket's rate-limit headers (nothing set in jobs.yaml) or by ``provider.tokens_per_minute`` at 98% of
it. What to read: the tokens the simulator counted as used per minute, over its limit, once the
bucket's first burst is spent (from ``WARM_UP_S`` after the first start to the last start, after which
calls only drain), and the share of requests it refused with 429.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.procs import askq_workers, wait_listening, write_config
from bench.throughput import BATCH, job_times, sim_stats
from common import keys
from common.config import load_config
from producer.batches import batch_status
from producer.submit import submit_file

LIMIT = 600_000
"""The simulator's tokens per minute..."""
WINDOW_S = 10.0
"""...in a bucket of 10 s of them (100,000 tokens), refilled continuously."""
TTFT_MS = 300
ANSWER_TOKENS = 200
MAX_TOKENS = 400
WORKERS = 2
CONCURRENCY = 64
CONFIGURED_SHARE = 0.98
CONFIGURED_BURST_S = 8.0
WARM_UP_S = 15.0
SAMPLE_S = 0.5


def simulator_flags() -> list[str]:
    return [
        *("--tpm-limit", str(LIMIT), "--tpm-window-s", str(WINDOW_S)),
        *("--ttft-ms", str(TTFT_MS), "--answer-tokens", str(ANSWER_TOKENS)),
    ]


def askq_config(configured: bool) -> dict[str, Any]:
    provider: dict[str, Any] = {"max_tokens": MAX_TOKENS}
    if configured:
        provider |= {"tokens_per_minute": int(LIMIT * CONFIGURED_SHARE), "rate_burst_s": CONFIGURED_BURST_S}
    return {"provider": provider, "limits": {"concurrency": CONCURRENCY}}


def run_tpm(folder: Path, jobs: int) -> dict[str, Any]:
    return {
        "limit": LIMIT,
        "headers": asyncio.run(_run(folder, jobs, configured=False)),
        "configured": asyncio.run(_run(folder, jobs, configured=True)),
    }


async def _run(folder: Path, jobs: int, *, configured: bool) -> dict[str, Any]:
    name = "configured" if configured else "headers"
    path = folder / f"tpm-{name}.txt"
    path.write_text("".join(f"tpm question {index}?\n" for index in range(jobs)), encoding="utf-8")
    config_path = write_config(folder, askq_config(configured))
    with (
        embedded_redis(folder / f"redis-tpm-{name}") as redis_url,
        simulator_process(*simulator_flags()) as base_url,
        askq_workers(WORKERS, redis_url, base_url, config_path, CONCURRENCY),
    ):
        redis = Redis.from_url(redis_url)
        try:
            await wait_listening(redis, WORKERS)
            await submit_file(redis, path, load_config(config_path), batch=BATCH)
            samples = await _sample_until_done(redis, base_url, jobs)
            times = await job_times(redis, await redis.zrange(keys.FINISHED, 0, -1))
        finally:
            await redis.aclose()
        stats = sim_stats(base_url)
    first_start, last_start = float(times[:, 0].min()), float(times[:, 0].max())
    per_minute, window_s = _rate(samples, first_start + WARM_UP_S, last_start)
    refused = stats["responses_by_status"].get("429", 0)
    return {
        "jobs": jobs,
        "elapsed_s": float(times[:, 1].max()) - first_start,
        "window_s": window_s,
        "tokens_per_minute": per_minute,
        "of_limit": per_minute / LIMIT,
        "requests": stats["requests_total"],
        "refused_429": refused,
        "share_429": refused / max(stats["requests_total"], 1),
        "refused_tpm": stats["refused_tpm"],
    }


async def _sample_until_done(redis: Redis, base_url: str, jobs: int) -> list[tuple[float, int]]:
    """(wall time, tokens the simulator counts as used) every ``SAMPLE_S`` until the batch is done."""
    samples = []
    while True:
        stats = sim_stats(base_url)
        samples.append((time.time(), stats["tokens_admitted"] - stats["tokens_returned"]))
        status = await batch_status(redis, BATCH, with_job_ids=False, with_latencies=False)
        if status.done and status.total == jobs:
            return samples
        await asyncio.sleep(SAMPLE_S)  # the figures come from the samples' own clock, not this wait


def _rate(samples: list[tuple[float, int]], start: float, end: float) -> tuple[float, float]:
    """Tokens used per minute between the samples nearest ``start`` and ``end``, and that window."""
    inside = [sample for sample in samples if start <= sample[0] <= end]
    if len(inside) < 2:
        return float("nan"), 0.0
    (t1, used1), (t2, used2) = inside[0], inside[-1]
    return (used2 - used1) / (t2 - t1) * 60, t2 - t1
