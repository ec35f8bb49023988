"""Provider faults through two workers: each question gets exactly the attempts the policy allows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from common.config import parse_config
from common.events import EventType
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import logged_events, results, run_burst_worker

ATTEMPTS = 4
# (question, provider attempts the policy allows, final status). No 503 here: it is the provider
# being away, waited for without spending attempts (tests/test_outage.py).
MIX = [
    ("plain", 1, "succeeded"),
    ("rate limited [sim:429@0.05x2]", 3, "succeeded"),
    ("server errors [sim:500x2]", 3, "succeeded"),
    ("cut mid-stream [sim:cut]", 2, "succeeded"),
    ("error inside a 200 stream [sim:error]", 2, "succeeded"),
    ("a malformed stream line [sim:badline]", 2, "succeeded"),
    ("no finish_reason [sim:nofinish]", 2, "succeeded"),
    ("slow first token [sim:slow=300]", 1, "succeeded"),
    ("first token past the read timeout [sim:slow=3000x1]", 2, "succeeded"),
    ("everything at once [sim:cut,500,error]", 4, "succeeded"),
    ("never recovers [sim:500x9]", ATTEMPTS, "failed"),
    ("bad request [sim:400]", 1, "failed"),
    ("no such model [sim:404]", 1, "failed"),
    ("unprocessable [sim:422]", 1, "failed"),
]


async def test_each_fault_gets_the_attempts_the_policy_allows(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """Retryable faults are retried up to retry.attempts, permanent ones tried once; one result each."""
    config = parse_config(
        {
            "provider": {"stall_timeout_s": 1.0},
            "limits": {"concurrency": 4, "max_jobs": 8},
            "retry": {"attempts": ATTEMPTS, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
            "stream": {"keep_ended_events": True},  # each job's events are counted once it has ended
        }
    )
    lines = "".join(json.dumps({"id": str(n), "question": q}) + "\n" for n, (q, _, _) in enumerate(MIX))
    await submit_file(redis, write("mix.jsonl", lines), config, batch="mix")
    await asyncio.gather(run_burst_worker(config, redis_url), run_burst_worker(config, redis_url))

    rows = await results(redis, "mix")
    assert [row.item_id for row in rows] == [str(n) for n in range(len(MIX))]
    asked = sim.stats()["attempts"]
    for row, (question, attempts, status) in zip(rows, MIX, strict=True):
        assert (row.status, row.attempts, asked[question]) == (status, attempts, attempts), question
        kinds = [event.type for event in await logged_events(redis, row.job_id)]
        assert kinds.count(EventType.START) == attempts, question
        assert kinds.count(EventType.RETRY) == attempts - 1, question
        assert kinds[-1] is (EventType.DONE if status == "succeeded" else EventType.FAILED), question
    assert all(row.answer for row in rows if row.status == "succeeded")
    codes = {row.error_code for row in rows if row.status == "failed"}
    assert codes == {"500", "400", "404", "422"}
