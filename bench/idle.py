"""An idle ``askq worker``: the Redis commands it sends a second, which ones, and how fast it picks
up a question submitted to it.

One ``askq worker`` process, a private redis-server and the simulator, twice: with the default
jobs.yaml, and with one schedule added (the process then runs the schedules worker too).

- **Commands.** ``INFO commandstats`` before and after ``WINDOW_S`` of quiet, minus the bench's own
  INFO. Redis counts the commands a Lua script calls as well as the script's call: the figure is
  Redis's own count, an upper bound on what a pay-per-command service bills. Then ``MONITOR`` for
  ``MONITOR_S`` names them, those sent by the worker apart from those its scripts called.
- **Pick-up.** One question submitted at a time, each once the worker has been idle a while: from
  the record's ``enqueued_at`` (the producer's clock, before the enqueue) to its ``started_at``
  (the worker's, as the job starts). Both are this machine's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.procs import askq_workers, wait_listening, write_config
from bench.throughput import command_counts
from common import keys, record
from common.config import load_config
from common.status import JobState
from producer.submit import submit_file

REPO = Path(__file__).resolve().parents[1]
WINDOW_S = 20.0
MONITOR_S = 5.0
SETTLE_S = 3.0
"""After the worker listens: its start-up (provider check, first polls) is over."""
PICKUP_GAP_S = 0.3
"""Idle time before each pick-up submit: the worker is back in its idle wait."""
SCHEDULE = {"cron": "0 7 * * *", "source": {"kind": "answers"}, "prompt": "Summarize."}
ENDED = {state.value.encode() for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)}


async def idle_commands(redis: Redis, window_s: float) -> dict[str, Any]:
    before = await command_counts(redis)
    started = time.monotonic()
    await asyncio.sleep(window_s)  # the window measured: the worker alone talks to Redis
    after = await command_counts(redis)
    elapsed_s = time.monotonic() - started
    delta = {name: after[name] - before.get(name, 0) for name in after if after[name] > before.get(name, 0)}
    delta.pop("info", None)  # the bench's own read
    return {
        "window_s": elapsed_s,
        "commands": sum(delta.values()),
        "commands_per_s": sum(delta.values()) / elapsed_s,
        "by_command": dict(sorted(delta.items(), key=lambda item: -item[1])),
    }


async def monitored(redis: Redis, seconds: float) -> dict[str, Any]:
    """What MONITOR shows in ``seconds``: commands by name, sent by clients or called by scripts."""
    sent: Counter[str] = Counter()
    by_scripts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with redis.monitor() as monitor:
        while (left_s := deadline - time.monotonic()) > 0:
            try:
                command = await asyncio.wait_for(monitor.next_command(), left_s)
            except TimeoutError:
                break
            name = command["command"].split(" ", 1)[0].strip('"').lower()
            (by_scripts if command.get("client_type") == "lua" else sent)[name] += 1
    return {
        "seconds": seconds,
        "sent_per_s": sum(sent.values()) / seconds,
        "sent": dict(sent.most_common()),
        "called_by_scripts": dict(by_scripts.most_common()),
    }


async def pickups(redis: Redis, folder: Path, config_path: Path, count: int) -> dict[str, Any]:
    config = load_config(config_path)
    path = folder / "one.txt"
    path.write_text("Are you awake?\n", encoding="utf-8")
    latencies_ms = []
    for index in range(count):
        await asyncio.sleep(PICKUP_GAP_S)  # the idle time before each submit, not a synchronisation
        report = await submit_file(redis, path, config, batch=f"pickup-{index}")
        job = keys.job_record(keys.job_id(report.batch, "1"))
        await _ended(redis, job)
        enqueued, started = await redis.hmget(job, [record.ENQUEUED_AT, record.STARTED_AT])  # type: ignore[misc]  # redis-py types sync and async alike
        latencies_ms.append((float(started) - float(enqueued)) * 1000)
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return {
        "pickups": count,
        "pickup_p50_ms": float(p50),
        "pickup_p95_ms": float(p95),
        "pickup_p99_ms": float(p99),
    }


async def _ended(redis: Redis, job: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await redis.hget(job, record.STATE) in ENDED:  # type: ignore[misc]  # as above
            return
        await asyncio.sleep(0.005)  # polling the record up to the job's end; not what is measured
    raise RuntimeError(f"{job} did not end in {timeout_s:g} s")


async def _measure(redis_url: str, folder: Path, config_path: Path, pickup_count: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    try:
        await wait_listening(redis, 1)
        await asyncio.sleep(SETTLE_S)  # start-up over: what follows is the idle worker
        result = await idle_commands(redis, WINDOW_S)
        result["monitor"] = await monitored(redis, MONITOR_S)
        if pickup_count:
            result |= await pickups(redis, folder, config_path, pickup_count)
        return result
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


async def run_idle(folder: Path, pickup_count: int = 200) -> dict[str, Any]:
    default = yaml.safe_load((REPO / "jobs.yaml").read_text(encoding="utf-8"))
    (folder / "idle-schedule").mkdir(parents=True, exist_ok=True)
    configs = {
        "default": REPO / "jobs.yaml",
        "with_schedule": write_config(
            folder / "idle-schedule", {**default, "schedules": {"daily": SCHEDULE}}
        ),
    }
    results: dict[str, Any] = {}
    for name, config_path in configs.items():
        concurrency = int(default["limits"]["concurrency"])
        with (
            embedded_redis(folder / f"redis-idle-{name}") as redis_url,
            simulator_process("--ttft-ms", "0", "--tokens-per-s", "0", "--answer-tokens", "24") as base_url,
            askq_workers(1, redis_url, base_url, config_path, concurrency),
        ):
            count = pickup_count if name == "default" else 0
            results[name] = await _measure(redis_url, folder, config_path, count)
    return results
