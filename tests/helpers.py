"""Helpers shared by tests: run the askq command, run a burst worker in-process, read results."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from arq.worker import Worker
from redis.asyncio import Redis

from common.config import AskqConfig
from common.events import EventType, StreamEvent
from producer import job_log
from producer.results import Result, iter_results
from worker.queue.askq_worker import AskqWorker
from worker.schedules.settings import schedule_worker_settings
from worker.settings import worker_settings

if TYPE_CHECKING:
    from tests.conftest import Simulator

REPO = Path(__file__).resolve().parents[1]
TTY_COLUMNS = 200
ASKQ = [sys.executable, "-m", "askq.cli"]


def askq(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ASKQ, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


async def run_burst_worker(config: AskqConfig, redis_url: str, **overrides: Any) -> Worker:
    """Run a worker until the queue is empty: the test's synchronisation point."""
    worker = AskqWorker(
        **{**worker_settings(config, url=redis_url, burst=True), "handle_signals": False, **overrides}
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def run_burst_schedule_worker(config: AskqConfig, redis_url: str, **overrides: Any) -> Worker:
    """Run the schedules worker (catching up on startup) until its queue is empty."""
    worker = AskqWorker(
        **{
            **schedule_worker_settings(config, url=redis_url, burst=True),
            "handle_signals": False,
            **overrides,
        }
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


def keeping_events(config: AskqConfig) -> AskqConfig:
    """``config`` with ``stream.keep_ended_events``: for tests that read ended jobs' events."""
    return config.model_copy(update={"stream": config.stream.model_copy(update={"keep_ended_events": True})})


async def results(redis: Redis, batch: str) -> list[Result]:
    return [result async for result in iter_results(redis, batch)]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float = 10.0,
    tolerate: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll ``check`` until it holds, failing after ``timeout_s``; a ``tolerate``d error means 'not yet'."""
    deadline = time.monotonic() + timeout_s
    while not await _holds(check, tolerate):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)  # the poll interval of a deadline-bound wait


async def logged_events(redis: Redis, job_id: str) -> list[StreamEvent]:
    """Every event of the job in its batch's log, oldest first."""
    return await job_log.logged_events(redis, job_id)


async def seqs_reused(redis: Redis, job_id: str) -> dict[int, list[str]]:
    """The job's seqs that carry two different events in its log (a resent entry repeats one event)."""
    by_seq: dict[int, set[str]] = defaultdict(set)
    for event in await logged_events(redis, job_id):
        by_seq[event.seq].add(json.dumps(event.model_dump(mode="json"), sort_keys=True))
    return {seq: sorted(found) for seq, found in by_seq.items() if len(found) > 1}


def final_text(events: Sequence[StreamEvent]) -> str:
    """The text a reader is left with: the deltas after the last start (a retry voids what came before)."""
    starts = [index for index, event in enumerate(events) if event.type is EventType.START]
    tail = events[starts[-1] :] if starts else events
    return "".join(event.text or "" for event in tail if event.type is EventType.DELTA)


async def _holds(check: Callable[[], Awaitable[bool]], tolerate: tuple[type[BaseException], ...]) -> bool:
    try:
        return await check()
    except tolerate:
        return False


def on_tty(*args: str, env: dict[str, str], cwd: Path = REPO, timeout_s: float = 60) -> tuple[int, bytes]:
    """Run askq on a pseudo-terminal (stdin, stdout and stderr); its exit status and every byte it wrote."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # the bytes as written: no \n -> \r\n on the way out
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, TTY_COLUMNS, 0, 0))
    base = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "FORCE_COLOR")}
    child = subprocess.Popen(
        [*ASKQ, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        # PYTHONPATH: this tree's askq, also from another working folder (the demo's).
        env={**base, "TERM": "xterm-256color", "COLUMNS": str(TTY_COLUMNS), "PYTHONPATH": str(REPO), **env},
    )
    os.close(slave)
    written = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                child.kill()
                raise AssertionError(f"askq {' '.join(args)} still writing after {timeout_s} s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last writer
                break
            if not chunk:
                break
            written += chunk
    finally:
        os.close(master)
    return child.wait(timeout=timeout_s), bytes(written)


async def answers_again(sim: Simulator) -> bool:
    """Whether the simulator answers a chat request (it was made to go down): poll with ``eventually``."""
    async with aiohttp.ClientSession() as http:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "up?"}]}
        async with http.post(f"{sim.base_url}/chat/completions", json=body) as resp:
            return resp.status == 200
