"""The running parts of one chaos scenario: a private Redis, the simulator, ``askq worker`` processes.

Everything listens on loopback and is stopped when the scenario ends. Workers reach Redis through
``worker_url``, which a scenario may point at a proxy; the bench itself always talks to Redis directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from askq.stack import embedded_redis, stop
from common import keys
from common.errors import NotFoundError
from producer.batches import batch_status

BATCH = "chaos"
POLL_S = 0.05
"""How often the bench looks at the batch's progress."""


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str


@dataclass
class Scene:
    work: Path
    jobs: int
    redis_args: Sequence[str]
    redis_port: int
    base_url: str
    config_path: Path
    redis_url: str = ""
    worker_url: str = ""
    redis: Redis = field(init=False)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    asked_to_stop: set[str] = field(default_factory=set)
    _redis_server: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # --- Redis ------------------------------------------------------------------------------

    def start_redis(self, extra_args: Sequence[str] | None = None) -> None:
        args = self.redis_args if extra_args is None else extra_args
        self.redis_url = self._redis_server.enter_context(
            embedded_redis(self.work / "redis", extra_args=args, port=self.redis_port)
        )
        self.worker_url = self.worker_url or self.redis_url
        self.redis = Redis.from_url(self.redis_url)

    async def restart_redis(self, extra_args: Sequence[str] | None = None) -> None:
        """Stop Redis (a clean shutdown: AOF, if on, is flushed) and start it on the same port."""
        await self.redis.aclose()
        self._redis_server.close()
        self._redis_server = contextlib.ExitStack()
        self.start_redis(extra_args)

    async def redis_pid(self) -> int:
        info: dict[str, Any] = await self.redis.info("server")
        return int(info["process_id"])

    async def pause_redis(self, seconds: float) -> None:
        """SIGSTOP Redis for ``seconds``: every client's commands hang, leases stop being renewed."""
        pid = await self.redis_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)  # the fault's duration, not synchronisation
        finally:
            os.kill(pid, signal.SIGCONT)

    async def close(self) -> None:
        for name in list(self.workers):
            stop(self.workers.pop(name))
        with contextlib.suppress(RedisError):
            await self.redis.aclose()
        self._redis_server.close()

    # --- workers ----------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.worker_url,
            "OPENAI_BASE_URL": self.base_url,
            "ASKQ_CONFIG": str(self.config_path),
        }

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        command = [sys.executable, "-m", "askq.cli", "worker"]
        process = subprocess.Popen(command, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.workers[name] = process
        return process

    def signal_worker(self, name: str, signum: int) -> subprocess.Popen[bytes]:
        """Send ``signum`` to a worker; it no longer counts as running (a replacement may take its place)."""
        process = self.workers.pop(name)
        self.asked_to_stop.add(name)
        process.send_signal(signum)
        if signum == signal.SIGKILL:
            process.wait()
        return process

    def worker_logs(self) -> dict[str, str]:
        return {path.stem: path.read_text(errors="replace") for path in sorted(self.work.glob("*.log"))}

    def exited_unasked(self) -> list[str]:
        """Workers that ended without the bench asking them to."""
        return [name for name, process in self.workers.items() if process.poll() is not None]

    # --- the batch --------------------------------------------------------------------------

    def askq(self, *args: str, url: str | None = None) -> CliRun:
        env = {**self.env(), "REDIS_URL": url or self.redis_url, "NO_COLOR": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "askq.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )
        return CliRun(done.returncode, done.stdout, done.stderr)

    def submit(self, extra_lines: Callable[[int], str] | None = None) -> CliRun:
        questions = self.work / "questions.jsonl"
        with questions.open("w", encoding="utf-8") as out:
            for n in range(self.jobs):
                text = f"Question {n}" + (extra_lines(n) if extra_lines else "")
                out.write(f'{{"id": "q{n}", "question": "{text}"}}\n')
        return self.askq("submit", str(questions), "--batch", BATCH, "--json")

    async def finished(self) -> int:
        """Jobs of the batch in a final state; -1 while Redis is away or the batch is gone."""
        try:
            status = await batch_status(self.redis, BATCH, with_job_ids=False, with_latencies=False)
        except (RedisError, OSError, NotFoundError):
            return -1
        return status.finished

    async def wait_finished(self, count: int, timeout_s: float) -> bool:
        """Until at least ``count`` jobs ended; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while await self.finished() < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)  # a deadline-bound look at the batch's progress
        return True

    async def running_jobs(self) -> int:
        try:
            raw = await self.redis.hget(keys.batch_record(BATCH), "running")  # type: ignore[misc]  # redis-py types sync and async alike
        except (RedisError, OSError):
            return 0
        return int(raw or 0)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float, *, poll_s: float = POLL_S
) -> bool:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll_s)  # a deadline-bound poll
    return True
