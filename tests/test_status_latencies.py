"""A status's latency percentiles: read from where the last status of the batch left off, always those of
every job that ended, once each, and only of the batch now under that name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

import producer.batches
from common import keys
from common.config import AskqConfig
from producer.batches import batch_status
from producer.deletion import delete_batch
from producer.latencies import LatencyCache
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import run_burst_worker


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> LatencyCache:
    fresh = LatencyCache()
    monkeypatch.setattr(producer.batches, "LATENCIES", fresh)
    return fresh


async def _run(redis: Redis, redis_url: str, config: AskqConfig, folder: Path, batch: str, n: int) -> None:
    """``n`` more questions in ``batch``, answered by a burst worker (each end appends a latency)."""
    path = folder / f"{batch}-{n}.jsonl"
    lines = (json.dumps({"id": f"{n}-{i}", "question": f"Question {n} {i}?"}) + "\n" for i in range(n))
    path.write_text("".join(lines), encoding="utf-8")
    await submit_file(redis, path, config, batch=batch)
    await run_burst_worker(config, redis_url)


async def _expected(redis: Redis, batch: str) -> list[float]:
    values = await redis.lrange(keys.batch_latencies(batch), 0, -1)  # type: ignore[misc]  # redis-py types sync and async alike
    return np.percentile([float(value) for value in values], [50, 95]).tolist()


async def test_a_status_reads_on_from_the_last_and_counts_every_job(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, tmp_path: Path, cache: LatencyCache
) -> None:
    """After more jobs end, the next status starts where the last stopped and has all the latencies."""
    await _run(redis, redis_url, config, tmp_path, "grow", 6)
    first = await batch_status(redis, "grow", with_job_ids=False)
    assert cache.start("grow") == 6
    assert [first.latency_p50_ms, first.latency_p95_ms] == await _expected(redis, "grow")

    await _run(redis, redis_url, config, tmp_path, "grow", 5)
    second = await batch_status(redis, "grow", with_job_ids=False)
    assert cache.start("grow") == 11
    assert [second.latency_p50_ms, second.latency_p95_ms] == await _expected(redis, "grow")


async def test_statuses_at_once_add_the_new_latencies_once(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, tmp_path: Path, cache: LatencyCache
) -> None:
    """Four statuses reading the same new tail together: each value is held once."""
    await _run(redis, redis_url, config, tmp_path, "busy", 4)
    await batch_status(redis, "busy", with_job_ids=False)
    await _run(redis, redis_url, config, tmp_path, "busy", 7)
    statuses = await asyncio.gather(*(batch_status(redis, "busy", with_job_ids=False) for _ in range(4)))
    assert cache.start("busy") == 11
    expected = await _expected(redis, "busy")
    assert all([status.latency_p50_ms, status.latency_p95_ms] == expected for status in statuses)


async def test_a_batch_submitted_again_under_its_name_shows_only_its_own_latencies(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, tmp_path: Path, cache: LatencyCache
) -> None:
    """Deleted and submitted anew with fewer jobs: the values held of the old one are dropped."""
    sim.configure(ttft_ms=40)
    await _run(redis, redis_url, config, tmp_path, "again", 6)
    await batch_status(redis, "again", with_job_ids=False)
    await delete_batch(redis, "again", config)
    sim.configure(ttft_ms=0)
    await _run(redis, redis_url, config, tmp_path, "again", 2)
    status = await batch_status(redis, "again", with_job_ids=False)
    assert cache.start("again") == 2
    assert [status.latency_p50_ms, status.latency_p95_ms] == await _expected(redis, "again")


def test_the_least_recently_asked_batch_is_dropped_past_the_limit() -> None:
    """A cache of 2 batches asked about a third forgets the first, keeps the others."""
    held = LatencyCache(max_batches=2)
    for batch in ("a", "b", "c"):
        assert held.percentiles(batch, b"1", 0, [b"5.0", b"7.0"]) == (6.0, 6.9)
    assert (held.start("a"), held.start("b"), held.start("c")) == (0, 2, 2)


async def test_first_token_times_are_kept_for_answered_jobs_only(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Each answered job adds its time to first token, never shorter than the provider's delay before
    its first token; a failed job adds none; the status has their percentiles."""
    sim.configure(ttft_ms=150, tokens_per_s=2000, answer_tokens=20)
    lines = [{"id": f"q{i}", "question": f"Question {i}?"} for i in range(3)]
    lines.append({"id": "bad", "question": "[sim:400] Refused"})
    path = write("ttft.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="ttft")
    await run_burst_worker(config, redis_url)
    values = [float(value) for value in await redis.lrange(keys.batch_first_tokens("ttft"), 0, -1)]  # type: ignore[misc]  # redis-py types sync and async alike
    assert len(values) == 3
    assert min(values) >= 150
    latencies = [float(value) for value in await redis.lrange(keys.batch_latencies("ttft"), 0, -1)]  # type: ignore[misc]  # redis-py types sync and async alike
    assert len(latencies) == 4  # the failed job has a latency, not a first token
    document = (await batch_status(redis, "ttft", with_job_ids=False)).to_json()
    p50, p95 = np.percentile(values, [50, 95]).tolist()
    assert document["first_token_ms"] == {"p50": p50, "p95": p95}
