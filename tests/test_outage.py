"""A provider that goes away: jobs wait for it, every worker together, without spending attempts."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
from redis.asyncio import Redis
from structlog.testing import capture_logs

from common.config import AskqConfig, parse_config
from common.errors import ProviderUnreachableError
from common.events import EventType
from common.provider_state import provider_states
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import answers_again, askq, eventually, logged_events, results, run_burst_worker
from worker.answering.gate import ProviderGate

JOBS = 40
OUTAGE_FAILURE = (
    r"the provider was unreachable for \d+ s \(since \d\d:\d\d:\d\d\): "
    r"cannot reach the provider at [\w.]+:\d+: connection refused"
)


def _config(outage_wait_s: float) -> AskqConfig:
    return parse_config(
        {
            "provider": {"outage_wait_s": outage_wait_s},
            "limits": {"concurrency": 8},
            "retry": {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
            "stream": {"keep_ended_events": True},
        }
    )


async def _submit(redis: Redis, config: AskqConfig, write: Any, batch: str, count: int = JOBS) -> None:
    lines = "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(count))
    await submit_file(redis, write("q.jsonl", lines), config, batch=batch)


async def _unreachable(redis: Redis) -> bool:
    return any(state.unreachable_since_ms is not None for state in await provider_states(redis))


async def test_a_provider_down_mid_batch_costs_no_attempt_and_status_says_so(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """Down for 3 s mid-batch: every job succeeds, no attempt is spent on a refusal, status says
    "provider unreachable since", and the log says so once when it begins and once when it ends."""
    sim.configure(tokens_per_s=100, answer_tokens=20)  # 0.2 s answers: the batch spans the outage
    config = _config(outage_wait_s=60)
    await _submit(redis, config, write, "down")
    with capture_logs() as logs:
        worker = asyncio.create_task(run_burst_worker(config, redis_url))
        await eventually(lambda: _finished_some(redis, "down"))
        sim.down(3)
        await eventually(lambda: _unreachable(redis), timeout_s=5)
        shown = askq("status", "down")
        assert "provider unreachable since" in shown.stdout
        as_json = json.loads(askq("status", "down", "--json").stdout)
        assert as_json["providers"][0]["unreachable_since"] is not None
        await worker
    rows = await results(redis, "down")
    assert [row.status for row in rows] == ["succeeded"] * JOBS
    for row in rows:
        retries = [event for event in await logged_events(redis, row.job_id) if event.type is EventType.RETRY]
        assert not [event.error for event in retries if "cannot reach" in (event.error or "")]
    assert not await _unreachable(redis)  # the first call that got through ended it
    began = [log for log in logs if log["event"].startswith("provider unreachable since")]
    ended = [log for log in logs if log["event"].startswith("provider reachable again after")]
    assert (len(began), len(ended)) == (1, 1)
    waited = [
        e for row in rows for e in await logged_events(redis, row.job_id) if e.type is EventType.WAITING
    ]
    assert waited, "no job said it waited for the provider"
    tailed = askq("tail", waited[0].job_id)
    assert "waiting for the provider: the provider is unreachable since" in tailed.stderr


async def _finished_some(redis: Redis, batch: str) -> bool:
    return len(await results(redis, batch)) >= 5


async def test_an_outage_past_outage_wait_fails_the_job_saying_so(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """A provider away for longer than provider.outage_wait_s fails its jobs, after one attempt, saying
    for how long and since when it was unreachable, and why."""
    config = _config(outage_wait_s=1)
    await _submit(redis, config, write, "gone", count=3)
    sim.down(4)
    try:
        await run_burst_worker(config, redis_url)
    finally:
        await eventually(lambda: answers_again(sim), timeout_s=10, tolerate=(aiohttp.ClientError,))
    rows = await results(redis, "gone")
    assert [row.status for row in rows] == ["failed"] * 3
    for row in rows:
        assert row.attempts == 1
        assert re.fullmatch(OUTAGE_FAILURE, row.error or ""), row.error


async def test_a_wait_for_the_provider_does_not_count_against_the_job_timeout(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """A job that waits out an outage shorter than provider.outage_wait_s but longer than
    limits.job_timeout_s is answered: waiting for a provider that is away is not the job running long."""
    config = parse_config(
        {
            "provider": {"outage_wait_s": 30},
            "limits": {"concurrency": 8, "job_timeout_s": 1},
            "retry": {"attempts": 2, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
        }
    )
    await _submit(redis, config, write, "patient", count=2)
    sim.down(3)
    try:
        await run_burst_worker(config, redis_url)
    finally:
        await eventually(lambda: answers_again(sim), timeout_s=10, tolerate=(aiohttp.ClientError,))
    rows = await results(redis, "patient")
    assert [(row.status, row.error) for row in rows] == [("succeeded", None)] * 2


async def test_only_a_call_sent_after_the_outage_was_seen_ends_it(redis: Redis) -> None:
    """A first piece of a call sent before this process knew of the outage may predate it (it was in
    flight when the server went down): it does not end the outage; a call sent after it does."""
    gate = ProviderGate(redis, "b", "down.example:80", parse_config({}))
    before = time.monotonic()
    gate.outage.saw(await gate.unreachable(ProviderUnreachableError("cannot reach the provider")))
    await gate.reachable(sent_at=before)
    assert await _unreachable(redis)
    await gate.reachable(sent_at=time.monotonic())
    assert not await _unreachable(redis)
