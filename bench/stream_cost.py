"""What live streaming costs: Redis commands per 1,000 tokens, and time added to the first token.

    .venv/bin/python -m bench.stream_cost [--jobs 40] [--out bench/results/stream_cost.json]

It starts a private redis-server, the simulator and one ``askq worker`` process, then measures side by
side in one run, so the machine's noise hits both sides alike:

- time to first token seen directly by an ``AsyncOpenAI`` stream against the simulator, and seen by a
  tail reader (``follow_job``) of an askq job asking the same: from the job's ``start`` event to the
  reader holding the first delta. The difference is what askq adds (queue pick-up excluded);
- Redis commands per 1,000 completion tokens (``INFO commandstats``), all of them and those that
  publish (``XADD`` + ``PUBLISH``), for a paced stream and an unpaced one, with the default coalescing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from openai import AsyncOpenAI
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process, stop
from common import keys
from common.config import load_config
from common.events import EventType, StreamEvent
from producer.batches import batch_status
from producer.submit import submit_file
from producer.tail import follow_job

TTFT_MS = 200
PACED_TOKENS_PER_S = 50


@contextmanager
def worker_process(redis_url: str, base_url: str) -> Iterator[None]:
    env = {**os.environ, "REDIS_URL": redis_url, "OPENAI_BASE_URL": base_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "askq.cli", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        stop(process)


async def direct_ttft_ms(client: AsyncOpenAI, question: str) -> float:
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = (time.perf_counter() - started) * 1000
            await stream.close()
            return elapsed
    raise RuntimeError("the stream ended without content")


async def askq_ttft_ms(redis: Redis, job_id: str) -> float:
    started: float | None = None
    async for item in follow_job(redis, job_id, block_ms=100):
        if isinstance(item, StreamEvent) and item.type is EventType.START:
            started = item.ts
        if isinstance(item, StreamEvent) and item.type is EventType.DELTA and started is not None:
            return (time.time() - started) * 1000
    raise RuntimeError(f"{job_id} ended without a delta")


async def submit(redis: Redis, questions: list[str], batch: str, folder: Path) -> None:
    path = folder / f"{batch}.txt"
    path.write_text("".join(question + "\n" for question in questions), encoding="utf-8")
    await submit_file(redis, path, load_config(), batch=batch)


async def wait_done(redis: Redis, batch: str) -> int:
    """Poll until every job has its result and arq has taken every job off its queue."""
    while True:
        status = await batch_status(redis, batch, with_job_ids=False)
        if status.done and not await redis.zcard(keys.QUEUE):
            return status.completion_tokens
        await asyncio.sleep(0.05)


async def command_counts(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def measure_ttft(redis: Redis, base_url: str, jobs: int, folder: Path) -> dict[str, float]:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    direct, relayed = [], []
    for index in range(jobs):
        question = f"TTFT probe {index}"
        direct.append(await direct_ttft_ms(client, question))
        await submit(redis, [question], f"ttft-{index}", folder)
        relayed.append(await askq_ttft_ms(redis, f"ttft-{index}:1"))
    await client.close()
    direct_p50, direct_p95 = np.percentile(direct, [50, 95])
    askq_p50, askq_p95 = np.percentile(relayed, [50, 95])
    return {
        "direct_p50_ms": direct_p50,
        "direct_p95_ms": direct_p95,
        "askq_p50_ms": askq_p50,
        "askq_p95_ms": askq_p95,
        "added_p50_ms": askq_p50 - direct_p50,
        "added_p95_ms": askq_p95 - direct_p95,
    }


async def measure_commands(redis: Redis, label: str, jobs: int, folder: Path) -> dict[str, float]:
    await redis.config_resetstat()
    await submit(redis, [f"{label} cost probe {index}" for index in range(jobs)], f"cost-{label}", folder)
    tokens = await wait_done(redis, f"cost-{label}")
    counts = await command_counts(redis)
    counts.pop("info", None)
    polling = sum(counts.pop(name, 0) for name in ("hgetall", "lrange", "zcard"))  # this script's polls
    publishing = counts.get("xadd", 0) + counts.get("publish", 0)
    return {
        "completion_tokens": tokens,
        "commands_per_1000_tokens": sum(counts.values()) * 1000 / tokens,
        "publish_commands_per_1000_tokens": publishing * 1000 / tokens,
        "excluded_polling_commands": polling,
    }


async def run(jobs: int) -> dict[str, Any]:
    results: dict[str, Any] = {"jobs": jobs, "sim_ttft_ms": TTFT_MS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, pace in (("paced", PACED_TOKENS_PER_S), ("unpaced", 0)):
            flags = ("--ttft-ms", str(TTFT_MS), "--tokens-per-s", str(pace), "--answer-tokens", "400")
            with (
                embedded_redis(folder / label) as redis_url,
                simulator_process(*flags) as base_url,
                worker_process(redis_url, base_url),
            ):
                redis = Redis.from_url(redis_url)
                if label == "paced":
                    results["ttft"] = await measure_ttft(redis, base_url, jobs, folder)
                results[label] = {"tokens_per_s": pace} | await measure_commands(redis, label, jobs, folder)
                await redis.aclose()
    return results


def print_table(results: dict[str, Any]) -> None:
    ttft = results["ttft"]
    print(f"time to first token, {results['jobs']} jobs, simulator TTFT {results['sim_ttft_ms']} ms:")
    for name, key in (
        ("direct AsyncOpenAI stream", "direct"),
        ("askq, start → tail reader", "askq"),
        ("added by askq", "added"),
    ):
        print(f"  {name:27} p50 {ttft[key + '_p50_ms']:7.1f} ms   p95 {ttft[key + '_p95_ms']:7.1f} ms")
    print("Redis commands per 1,000 completion tokens (default coalescing: 50 ms / 256 chars):")
    for label in ("paced", "unpaced"):
        row = results[label]
        pace = f"{row['tokens_per_s']} tokens/s" if row["tokens_per_s"] else "no delay"
        publishing = row["publish_commands_per_1000_tokens"]
        everything = row["commands_per_1000_tokens"]
        print(
            f"  {label:8} {pace:>12}   publishing (XADD + PUBLISH) {publishing:6.1f}"
            f"   all, arq's queue polls included {everything:7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/results/stream_cost.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args.jobs))
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
