"""Processes a benchmark runs and what they cost: askq workers, and CPU seconds read from /proc."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from askq.serve import READY
from askq.stack import stop
from common import keys

READY_TIMEOUT_S = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def redis_cpu_s(redis: Redis) -> float:
    info: dict[str, Any] = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextmanager
def askq_server(redis_url: str, config_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``askq serve --port 0``, ready (it said so on stderr): its base URL and process; stopped after."""
    env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": str(config_path)}
    env.pop("ASKQ_API_TOKEN", None)
    command = [sys.executable, "-m", "askq.cli", "serve", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    # Past its first lines, what it says (warnings) must not fill the pipe and stall it: read away.
    draining = threading.Thread(target=process.stderr.read, daemon=True)
    try:
        url = _listening_url(process)
        draining.start()
        yield url, process
    finally:
        stop(process)
        if draining.is_alive():
            draining.join()  # to the pipe's end: the process has exited
        process.stderr.close()


def _listening_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    said = []
    for line in process.stderr:  # its first lines: the server says when it listens
        if line.startswith(READY):
            return line.removeprefix(READY).split()[0]
        said.append(line)
    raise RuntimeError(f"askq serve exited {process.wait()}: {''.join(said)}")


@contextmanager
def askq_workers(
    count: int, redis_url: str, base_url: str, config_path: Path, concurrency: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``askq worker`` processes, stopped (SIGTERM) when the block ends."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "OPENAI_BASE_URL": base_url,
        "ASKQ_CONFIG": str(config_path),
    }
    command = [sys.executable, "-m", "askq.cli", "worker", "--concurrency", str(concurrency)]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            stop(worker)


async def wait_listening(redis: Redis, workers: int, queue: str = keys.QUEUE) -> None:
    """Until ``workers`` workers have polled once and listen for wake-ups."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        [(_, listening)] = await redis.pubsub_numsub(keys.queue_wake(queue))
        if listening >= workers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers not ready in {READY_TIMEOUT_S:g} s ({listening} are)")
        await asyncio.sleep(0.05)  # polling a starting process up to the deadline above
