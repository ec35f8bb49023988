"""Tokens per minute with real workers against the simulator's token bucket: a configured limit shared
by two `askq worker` processes, limits learned from the headers, and a provider that sends none."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from common import keys
from common.config import parse_config
from common.provider_state import provider_states
from producer.batches import batch_status
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, eventually, results, run_burst_worker
from tests.test_faults import worker_process

QUESTIONS = 40
TPM = 60_000
"""The simulator's limit: 1,000 tokens a second, in a bucket of one second (1,000 tokens): about ten
calls of this test at once, where 32 calls in flight would take three times that."""
ANSWER = {"answer_tokens": 20, "tpm_limit": TPM, "tpm_window_s": 1.0}
LIMITS = {"concurrency": 16, "max_jobs": 16}
PROVIDER = {"max_tokens": 50}


def _questions(write: Any) -> Path:
    lines = (json.dumps({"id": f"q{n}", "question": f"Question {n}?"}) + "\n" for n in range(QUESTIONS))
    path: Path = write("tpm.jsonl", "".join(lines))
    return path


def _tokens_used(sim: Simulator) -> int:
    stats = sim.stats()
    used: int = stats["tokens_admitted"] - stats["tokens_returned"]
    return used


async def _done(redis: Redis, batch: str) -> bool:
    return (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).done


async def test_two_workers_share_a_configured_tokens_per_minute_without_a_429(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path, write: Any
) -> None:
    """Two `askq worker` processes at 16 calls each under tokens_per_minute at 90% of the simulator's
    bucket: every call answered at once (no 429), and the tokens used within the limit over the run."""
    sim.configure(**ANSWER)
    config = {
        "provider": {**PROVIDER, "tokens_per_minute": int(TPM * 0.9), "rate_burst_s": 0.8},
        "limits": LIMITS,
    }
    config_path = tmp_path / "jobs.yaml"
    config_path.write_text(yaml.safe_dump(config))
    await submit_file(redis, _questions(write), parse_config(config), batch="tpm")
    started = time.monotonic()
    with (
        worker_process(tmp_path, "a", config_path, redis_url, sim),
        worker_process(tmp_path, "b", config_path, redis_url, sim),
    ):
        await eventually(lambda: _done(redis, "tpm"), timeout_s=120)
    took_s = time.monotonic() - started
    assert [row.status for row in await results(redis, "tpm")] == ["succeeded"] * QUESTIONS
    stats = sim.stats()
    assert stats["responses_by_status"] == {"200": QUESTIONS}
    assert stats["refused_tpm"] == 0
    # What the simulator's bucket allows over the run: its size, then its rate.
    assert _tokens_used(sim) <= TPM / 60 * 1.0 + TPM / 60 * took_s
    [state] = await provider_states(redis)
    assert "tokens/min (provider.tokens_per_minute in jobs.yaml)" in state.lines()[0]


async def test_with_nothing_configured_the_headers_pace_every_call_after_the_probe(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """No limit in jobs.yaml: the simulator's headers are learned from the first answer and the rest of
    the batch runs under them without a 429; status says the pace came from the headers."""
    sim.configure(**ANSWER)
    config = parse_config({"provider": PROVIDER, "limits": LIMITS})
    await submit_file(redis, _questions(write), config, batch="learned")
    await run_burst_worker(config, redis_url)
    assert [row.status for row in await results(redis, "learned")] == ["succeeded"] * QUESTIONS
    learned = await redis.hgetall(keys.provider_rate_limits(_endpoint(sim)))
    assert learned[b"tokens"] == str(TPM).encode()
    assert b"requests" not in learned  # the simulator limits tokens only: requests are not paced
    stats = sim.stats()
    assert stats["responses_by_status"] == {"200": QUESTIONS}
    shown = askq("status", "learned", env={"COLUMNS": "400"}).stdout
    assert "58,200 tokens/min (97% of the limit its x-ratelimit headers gave at" in shown


async def test_a_provider_without_headers_is_not_paced(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """No limit anywhere and no headers: the probe learns that, no pace is written, status shows none."""
    config = parse_config({"provider": PROVIDER, "limits": LIMITS})
    await submit_file(redis, _questions(write), config, batch="bare")
    await run_burst_worker(config, redis_url)
    assert [row.status for row in await results(redis, "bare")] == ["succeeded"] * QUESTIONS
    endpoint = _endpoint(sim)
    assert await redis.hget(keys.provider_rate_limits(endpoint), "none") == b"1"
    assert not await redis.exists(keys.provider_pace(endpoint), keys.provider_token_pace(endpoint))
    shown = askq("status", "bare", env={"COLUMNS": "400"}).stdout
    assert "askq paces" not in shown
    assert "x-ratelimit" not in shown  # nothing holds it back: no provider line


def _endpoint(sim: Simulator) -> str:
    return sim.base_url.split("//", 1)[1].split("/", 1)[0]
