"""A Redis without persistence: workers warn when they start, and say so when a restart loses askq's data.

Each test runs its own redis-server on a fixed port, so it can be restarted empty under a live worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from askq.stack import embedded_redis, free_port, stop
from common import keys
from common.status import JobState
from tests.conftest import Simulator
from tests.helpers import askq, eventually

REPO = Path(__file__).resolve().parents[1]
NO_PERSISTENCE = "Redis has no persistence"
LOST = "Redis lost askq's data (restarted without persistence?)"


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"limits": {"concurrency": 4, "max_jobs": 4, "lease_s": 2}}))
    return path


def _questions(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(count))
    )
    return path


def _start_worker(log_path: Path, config: Path, redis_url: str, sim: Simulator) -> subprocess.Popen[bytes]:
    """A real `askq worker` process, its log (JSON lines) in ``log_path``."""
    env = {**os.environ, "REDIS_URL": redis_url, "OPENAI_BASE_URL": sim.base_url, "ASKQ_CONFIG": str(config)}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "askq.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _every_log_expires(redis: Redis) -> bool:
    return all([await redis.ttl(key) != -1 async for key in redis.scan_iter("askq:batch:*")])


def _logged(log_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


def _events(log_path: Path, event: str) -> list[dict[str, Any]]:
    return [line for line in _logged(log_path) if line["event"].startswith(event)]


async def test_a_restart_without_persistence_is_named_by_the_worker_and_the_cli(
    sim: Simulator, tmp_path: Path
) -> None:
    """The worker warns at start (no AOF, no snapshots); after Redis restarts empty it logs one line that
    Redis lost askq's data, its running jobs say their result was not stored (never `job finished`),
    and `askq status` / `results` of the lost batch say Redis lost its data."""
    sim.configure(ttft_ms=20, tokens_per_s=20, answer_tokens=60)  # about 3 s a job
    port = free_port()
    config = _config_file(tmp_path)
    log_path = tmp_path / "worker.log"
    first = embedded_redis(tmp_path / "redis", port=port)
    url = first.__enter__()
    worker = None
    try:
        env = {"REDIS_URL": url, "ASKQ_CONFIG": str(config)}
        assert askq("submit", str(_questions(tmp_path, 8)), "--batch", "gone", env=env).returncode == 0
        worker = _start_worker(log_path, config, url, sim)
        redis = Redis.from_url(url)
        await eventually(lambda: _running(redis, "gone"), timeout_s=30)
        await redis.aclose()
    except BaseException:
        if worker is not None:
            stop(worker)
        raise
    finally:
        first.__exit__(None, None, None)  # Redis stops; the worker goes on
    with embedded_redis(tmp_path / "redis", port=port):  # the same port, empty: nothing was kept
        try:
            await eventually(lambda: _said(log_path, "result not stored"), timeout_s=30)
            assert worker.poll() is None
            # What the worker sent into the emptied Redis (its events held over the outage) expires.
            fresh = Redis.from_url(url)
            await eventually(lambda: _every_log_expires(fresh), timeout_s=10)
            await fresh.aclose()
            status = askq("status", "gone", env=env)
            results = askq("results", "gone", env=env)
        finally:
            stop(worker)
    [warning] = _events(log_path, NO_PERSISTENCE)
    assert warning["level"] == "warning"
    [lost] = _events(log_path, LOST)  # said once, however many jobs it hit
    assert lost["level"] == "error"
    assert lost["event"].endswith("running jobs cannot be recorded")
    not_stored = {line["job_id"] for line in _events(log_path, "result not stored")}
    finished = {line["job_id"] for line in _events(log_path, "job finished")}
    assert not_stored
    assert not (not_stored & finished)  # a job whose result was not stored never says it finished
    assert "Traceback" not in log_path.read_text()
    for done in (status, results):
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1, done.stderr
        assert "Redis lost askq's data (restarted without persistence?)" in done.stderr


async def test_a_worker_on_a_redis_with_aof_does_not_warn(sim: Simulator, tmp_path: Path) -> None:
    """With AOF on there is nothing to warn about: no persistence line in the worker's log."""
    with embedded_redis(tmp_path / "redis", extra_args=["--appendonly", "yes"]) as url:
        done = askq("worker", "--burst", env={"REDIS_URL": url, "OPENAI_BASE_URL": sim.base_url})
    assert done.returncode == 0, done.stderr
    assert "worker started" in done.stderr + done.stdout
    assert "persist" not in done.stderr + done.stdout


async def _said(log_path: Path, event: str) -> bool:
    return bool(_events(log_path, event))


async def _running(redis: Redis, batch: str) -> bool:
    running = await redis.hget(keys.batch_record(batch), JobState.RUNNING.value)  # type: ignore[misc]  # redis-py types sync and async alike
    return int(running or 0) >= 2
