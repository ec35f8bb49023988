"""The provider gate's state as a status tells it: a cooldown's time left, the pace's wait, a halt and why."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from common.errors import RetryableProviderError
from common.provider_state import provider_states
from producer.batches import status_document
from producer.retry import retry_batch
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_worker
from worker.answering.admission import GateMemory
from worker.answering.gate import ProviderGate

ENDPOINT = "provider:443"


async def test_a_cooldown_is_listed_with_its_time_left(redis: Redis) -> None:
    """A 429 asking 30 s: the provider is listed, cooling down for at most 30 s more."""
    gate = ProviderGate(redis, "b", ENDPOINT, parse_config({}), GateMemory())
    await gate.refused(RetryableProviderError("HTTP 429", status_code=429, retry_after_s=30.0))
    [state] = await provider_states(redis)
    document = state.to_json()
    assert document["endpoint"] == ENDPOINT
    assert 25 < document["cooldown_s"] <= 30
    assert document["pace_wait_s"] is None
    assert "asked askq to hold off (429)" in state.lines()[0]


async def test_a_paced_provider_is_listed_with_the_wait_it_has_booked(redis: Redis) -> None:
    """At 60 requests a minute, three admissions book the next send time 3 s ahead."""
    paced = parse_config({"provider": {"requests_per_minute": 60}})
    gate = ProviderGate(redis, "b", ENDPOINT, paced, GateMemory())
    sends = [(await gate.admit()).send_in_s for _ in range(3)]
    assert sends[0] == 0
    [state] = await provider_states(redis)
    assert 2 < state.to_json()["pace_wait_s"] <= 3
    assert state.to_json()["cooldown_s"] is None


async def test_no_gate_no_provider_listed(redis: Redis) -> None:
    """An unpaced admission with nothing in force lists no provider."""
    await ProviderGate(redis, "b", ENDPOINT, parse_config({}), GateMemory()).admit()
    assert await provider_states(redis) == []


async def test_a_halted_batch_says_why_until_retry(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A 401 halts the batch: its status quotes the refusal, its other jobs fail unsent; retry clears it."""
    one = {"id": "first", "question": "[sim:401] Refused key"}
    rest = [{"id": f"q{i}", "question": f"Question {i}?"} for i in range(3)]
    lines = "".join(json.dumps(line) + "\n" for line in [one, *rest])
    await submit_file(redis, write("halt.jsonl", lines), config, batch="halt")
    await run_burst_worker(config, redis_url, max_jobs=1)  # one at a time: the 401 comes first
    document = await status_document(redis, "halt")
    assert document["halt"] is not None
    assert "HTTP 401" in document["halt"]
    assert document["errors"] == [
        {"reason": "not sent: batch halted", "retried": 0, "failed": 3},
        {"reason": "HTTP 401", "retried": 0, "failed": 1},
    ]
    shown = askq("status", "halt", env={"REDIS_URL": redis_url, "COLUMNS": "300"})
    assert "jobs are not sent: HTTP 401" in shown.stdout
    await retry_batch(redis, "halt", config, include_cancelled=False)
    assert (await status_document(redis, "halt"))["halt"] is None
