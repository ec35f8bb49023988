"""Stream relay: from the simulator writing a token to a pub/sub subscriber holding it.

The simulator stamps each token with the wall time of its write (``--stamp-tokens``); a subscriber
to the batch's channel, in this process, subtracts that from the time it receives each delta. The
first token of each job gives the time askq adds to the time to first token.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.mixes import Mix
from bench.procs import askq_workers, wait_listening, write_config
from bench.throughput import BATCH, command_counts, questions_file
from common import keys
from common.config import load_config
from producer.submit import submit_file

END_COMMANDS_PER_JOB = 2
"""The XADD and PUBLISH of a job's end, made inside the call that stores its result."""


class Tap:
    """Relay latencies of every stamped token, and of each job's first."""

    def __init__(self) -> None:
        self.all_ms: list[float] = []
        self.first_ms: list[float] = []
        self._jobs_seen: set[str] = set()

    def receive(self, data: bytes, received: float) -> None:
        for event in json.loads(data):
            if event["type"] == "delta":
                self._delta(event, received)

    def _delta(self, event: dict[str, Any], received: float) -> None:
        latencies = [(received - float(stamp)) * 1000 for stamp in event["text"].split()]
        if event["job_id"] not in self._jobs_seen:
            self._jobs_seen.add(event["job_id"])
            self.first_ms.append(latencies[0])
        self.all_ms += latencies


async def listen(redis: Redis, tap: Tap, ready: asyncio.Event, batch: str = BATCH) -> None:
    """Feeds ``tap`` from the batch's channel, subscribed before ``ready`` is set."""
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(keys.batch_events_channel(batch))
        ready.set()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                tap.receive(message["data"], time.time())


async def run_relay(mix: Mix, folder: Path) -> dict[str, Any]:
    path = questions_file(folder, mix)
    config_path = write_config(folder, mix.askq_config())
    tap = Tap()
    with (
        embedded_redis(folder / "redis-relay") as redis_url,
        simulator_process(*mix.simulator_flags(), "--stamp-tokens", "true") as base_url,
        askq_workers(1, redis_url, base_url, config_path, mix.concurrency),
    ):
        redis = Redis.from_url(redis_url)
        ready = asyncio.Event()
        listening = asyncio.create_task(listen(redis, tap, ready))
        try:
            await wait_listening(redis, 1)
            await ready.wait()
            await redis.config_resetstat()
            await submit_file(redis, path, load_config(), batch=BATCH)
            await wait_tokens(tap, mix.jobs * mix.answer_tokens)
            counts = await command_counts(redis)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await redis.aclose()
    relayed = counts.get("xadd", 0) + counts.get("publish", 0)
    # Each job's end is logged and published by the Lua call that stores its result (one XADD and
    # one PUBLISH inside it, no round trip of their own); the rest are the relay's flushes.
    ends = END_COMMANDS_PER_JOB * mix.jobs
    p50, p99 = np.percentile(tap.all_ms, [50, 99])
    first_p50, first_p99 = np.percentile(tap.first_ms, [50, 99])
    return {
        "tokens": len(tap.all_ms),
        "relay_p50_ms": float(p50),
        "relay_p99_ms": float(p99),
        "added_ttft_p50_ms": float(first_p50),
        "added_ttft_p99_ms": float(first_p99),
        "publish_commands_per_1000_tokens": (relayed - ends) * 1000 / len(tap.all_ms),
        "all_publish_commands_per_1000_tokens": relayed * 1000 / len(tap.all_ms),
    }


async def wait_tokens(tap: Tap, tokens: int) -> None:
    deadline = time.monotonic() + 300
    while len(tap.all_ms) < tokens:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(tap.all_ms)} of {tokens} tokens relayed")
        await asyncio.sleep(0.05)  # polled up to the deadline above
