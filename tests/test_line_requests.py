"""A plain JSONL line's own model, system prompt and request parameters reach the provider."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker


async def test_a_plain_line_s_model_system_and_temperature_reach_the_provider(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """The provider sees each line's own model, system message and temperature; a bare line gets the
    job type's, and a per-line max_tokens cuts its answer."""
    sim.configure(record_requests=True, answer_tokens=40)
    lines = [
        {
            "id": "own",
            "question": "Why is the sky blue?",
            "model": "gpt-4.1-mini",
            "system": "Answer as a pirate.",
            "temperature": 1.5,
        },
        {"id": "bare", "question": "What is a semaphore?"},
        {"id": "short", "question": "Tell me about Seoul.", "max_tokens": 3},
    ]
    path = write("lines.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="lines")
    await run_burst_worker(config, redis_url)

    seen = {request["user"]: request for request in sim.requests()}
    own, bare = seen["Why is the sky blue?"], seen["What is a semaphore?"]
    qa = config.job_type("qa")
    assert (own["model"], own["system"], own["temperature"]) == ("gpt-4.1-mini", "Answer as a pirate.", 1.5)
    assert (bare["model"], bare["system"]) == (qa.model or config.provider.model, qa.system_prompt)
    assert bare["temperature"] == (
        qa.temperature if qa.temperature is not None else config.provider.temperature
    )
    rows = {row.item_id: row for row in await results(redis, "lines")}
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert rows["own"].model == "gpt-4.1-mini"
    assert rows["short"].usage is not None
    assert rows["short"].usage["completion_tokens"] == 3
