"""A batch's errors by reason: its retried attempts and failed jobs, counted once as each job ends."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from producer.batches import batch_status
from producer.retry import retry_batch
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_worker

QUESTIONS = [
    ("twice", "[sim:500x2] Two server errors, then an answer"),
    ("cut", "[sim:cut] A stream cut once"),
    ("refused", "[sim:400] Refused every time"),
    ("spent", "[sim:500x4] More server errors than attempts"),
    ("fine", "No fault at all"),
]
EXPECTED = [
    # config's retry.attempts is 4: "spent" retried 3 times, then failed with its fourth 500.
    {"reason": "HTTP 500", "retried": 5, "failed": 1},
    {"reason": "HTTP 400", "retried": 0, "failed": 1},
    {"reason": "stream broken", "retried": 1, "failed": 0},
]


async def _run_batch(redis: Redis, redis_url: str, config: AskqConfig, write: Any) -> None:
    lines = "".join(json.dumps({"id": item, "question": question}) + "\n" for item, question in QUESTIONS)
    await submit_file(redis, write("faults.jsonl", lines), config, batch="faults")
    await run_burst_worker(config, redis_url)


async def test_errors_are_counted_by_reason(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Retried attempts and failures count under their status or kind, most frequent first."""
    await _run_batch(redis, redis_url, config, write)
    status = await batch_status(redis, "faults")
    assert status.to_json()["errors"] == EXPECTED
    fields = await redis.hgetall(keys.batch_record("faults"))
    assert fields[(record.ERRORS_RETRIED + "HTTP 500").encode()] == b"5"


async def test_a_retried_job_that_fails_again_counts_again(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq retry` keeps the counts: a job that fails again adds its new failure, never replaces it."""
    await _run_batch(redis, redis_url, config, write)
    assert await retry_batch(redis, "faults", config, include_cancelled=False) == 2
    await run_burst_worker(config, redis_url)  # "refused" fails again; "spent" is answered this time
    errors = {error.reason: error for error in (await batch_status(redis, "faults")).errors}
    assert (errors["HTTP 400"].retried, errors["HTTP 400"].failed) == (0, 2)
    assert (errors["HTTP 500"].retried, errors["HTTP 500"].failed) == (5, 1)


async def test_status_shows_errors_by_reason(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq status` has one errors line, and `--json` the same counts."""
    await _run_batch(redis, redis_url, config, write)
    shown = askq("status", "faults", env={"REDIS_URL": redis_url, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "6 × HTTP 500 (1 failed), 1 × HTTP 400 (1 failed), 1 × stream broken" in shown.stdout
    as_json = askq("status", "faults", "--json", env={"REDIS_URL": redis_url})
    assert json.loads(as_json.stdout)["errors"] == EXPECTED
