"""`askq batches`, `askq delete`, `--version` and `--json` errors, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from redis.asyncio import Redis

from askq.manage import age
from common import keys
from common.config import AskqConfig
from producer.deletion import LATE_EVENTS_S, delete_batch
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import ASKQ, REPO, askq, eventually, on_tty, run_burst_worker


async def _submitted(redis: Redis, config: AskqConfig, write: Any, batch: str, lines: int) -> None:
    questions = "".join(f"question {index} of {batch}\n" for index in range(lines))
    await submit_file(redis, write(f"{batch}.txt", questions), config, batch=batch)


async def _keys_of(redis: Redis, batch: str) -> list[bytes]:
    return sorted([key async for key in redis.scan_iter(match=f"*{batch}*")])


def test_version_names_the_package() -> None:
    """askq --version prints the installed version."""
    done = askq("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("askq 0.")


def test_ages_are_short() -> None:
    """Ages read at a glance: seconds, minutes, hours, days."""
    assert [age(s) for s in (5, 125, 7_300, 200_000)] == ["5s", "2m", "2h", "2d"]


async def test_batches_lists_newest_first_with_counts(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Each kept batch once, newest first, with its counts; an expired one is dropped from the index."""
    await _submitted(redis, config, write, "older", 2)
    await run_burst_worker(config, redis_url)
    await _submitted(redis, config, write, "newer", 3)
    await _submitted(redis, config, write, "gone", 1)
    await redis.zadd(keys.BATCHES, {"gone": 1})  # created long ago
    await redis.delete(keys.batch_record("gone"))  # and expired since

    listed = askq("batches", "--json")

    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["batch"] for row in rows] == ["newer", "older"]
    assert rows[1]["counts"]["succeeded"] == 2
    assert rows[0]["counts"]["queued"] == 3
    assert "job_ids" not in rows[0]
    assert await redis.zscore(keys.BATCHES, "gone") is None
    table = askq("batches")
    assert "newer" in table.stdout
    assert "older" in table.stdout


async def test_delete_removes_every_key_of_the_batch_and_only_those(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """After delete --yes nothing of the batch is left in Redis; another batch keeps all it had."""
    await _submitted(redis, config, write, "doomed", 3)
    await _submitted(redis, config, write, "kept", 2)
    await run_burst_worker(config, redis_url)
    await _submitted(redis, config, write, "doomed", 5)  # two more, still queued
    kept_before = await _keys_of(redis, "kept")

    done = askq("delete", "doomed", "--yes")

    assert done.returncode == 0, done.stderr
    assert "deleted batch doomed: 5 jobs" in done.stderr
    assert await _keys_of(redis, "doomed") == []
    assert await redis.zcard(keys.QUEUE) == 0
    assert await _keys_of(redis, "kept") == kept_before
    again = askq("delete", "doomed", "--yes")
    assert again.returncode == 1
    assert "unknown batch 'doomed'" in again.stderr


async def test_delete_asks_first_and_refuses_without_a_terminal(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """Without --yes and with no terminal to ask on, nothing is deleted and the message says --yes."""
    await _submitted(redis, config, write, "safe", 2)
    done = askq("delete", "safe")
    assert done.returncode == 1
    assert "add --yes" in done.stderr
    assert await redis.exists(keys.batch_record("safe"))


async def test_delete_stops_running_jobs_first(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A job running on a live worker is aborted before the keys go; what its run sends as it stops
    lands in an emptied log that expires, never in one made anew without an expiry."""
    sim.configure(ttft_ms=30_000)
    await _submitted(redis, config, write, "busy", 1)
    worker = subprocess.Popen([*ASKQ, "worker"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        await eventually(lambda: redis.exists(keys.arq_in_progress("busy:1")), timeout_s=30)
        done = askq("delete", "busy", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"batch": "busy", "deleted_jobs": 1, "still_running": 0}
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
    await _only_an_expiring_log_is_left(redis, "busy")


async def _asked_provider(sim: Simulator) -> bool:
    return bool(sim.stats()["requests_total"] >= 1)


async def test_a_run_outliving_the_wait_is_still_aborted(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A worker that cannot answer the abort in time (stopped) keeps its abort request and stops the
    run when it resumes; the provider is not asked again, and nothing of the batch is left for ever."""
    sim.configure(ttft_ms=30_000)
    await _submitted(redis, config, write, "paused", 1)
    worker = subprocess.Popen([*ASKQ, "worker"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        # Claimed is not yet running: stopped in between, the job would be deleted as queued.
        await eventually(lambda: _asked_provider(sim), timeout_s=30)
        os.kill(worker.pid, signal.SIGSTOP)
        report = await delete_batch(redis, "paused", config, stop_wait_s=0.2)
        assert report.still_running == 1
        os.kill(worker.pid, signal.SIGCONT)
        await eventually(lambda: _gone(redis, keys.arq_in_progress("paused:1")), timeout_s=30)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        worker.terminate()
        worker.communicate(timeout=30)
    assert sim.stats()["requests_total"] == 1
    assert await redis.zscore(keys.ARQ_ABORT, "paused:1") is None  # taken by the worker that aborted
    await _only_an_expiring_log_is_left(redis, "paused")


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def _only_an_expiring_log_is_left(redis: Redis, batch: str) -> None:
    left = await _keys_of(redis, batch)
    assert left in ([], [keys.batch_log(batch).encode()])
    if left:
        assert 0 < await redis.ttl(keys.batch_log(batch)) <= LATE_EVENTS_S


def test_json_errors_are_json_on_stderr(redis: Redis) -> None:
    """With --json a failure is one JSON object on stderr naming the error's kind and message."""
    done = askq("status", "nope", "--json")
    assert done.returncode == 1
    assert json.loads(done.stderr) == {
        "error": {
            "type": "NotFoundError",
            "message": "unknown batch 'nope': this Redis holds no askq data at all (another REDIS_URL? or "
            "Redis lost its data: restarted without persistence?)",
        }
    }


def test_usage_errors_are_json_under_json() -> None:
    """A command line askq cannot parse, with --json, is one JSON object on stderr and exit 2."""
    done = askq("status", "--json")
    assert done.returncode == 2
    assert json.loads(done.stderr)["error"] == {
        "type": "UsageError",
        "message": "askq status: the following arguments are required: batch",
    }
    plain = askq("status")
    assert plain.returncode == 2
    assert plain.stderr.startswith("usage: askq status")


async def test_cancel_and_delete_draw_a_bar_on_a_terminal_only(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """A long cancel or delete shows its progress on a terminal; piped, only the result line."""
    await _submitted(redis, config, write, "long", 1200)
    status, written = on_tty("cancel", "long", env={})
    assert status == 0
    assert b"cancelling long" in written
    assert b"1200/1200" in written
    status, written = on_tty("delete", "long", "--yes", env={})
    assert status == 0
    assert b"deleting long" in written
    await _submitted(redis, config, write, "piped", 3)
    piped = askq("delete", "piped", "--yes")
    assert piped.stderr == "deleted batch piped: 3 jobs, their results and events\n"
