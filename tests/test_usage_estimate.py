"""A provider that reports no usage (llama-cpp-python ignores stream_options): usage is estimated and
said to be, never recorded as 0 tokens."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from common.usage import Usage
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, results, run_burst_worker
from worker.schedules.output import RunReport, render

QUESTIONS = "Why is the sky blue?\nWhat is a queue?\n"


async def test_results_carry_an_estimate_marked_so(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """With no usage chunk, each result's usage has non-zero counts and "estimated": true."""
    sim.configure(usage_chunk=False)
    await submit_file(redis, write("q.txt", QUESTIONS), config, batch="u")
    await run_burst_worker(config, redis_url)
    for row in await results(redis, "u"):
        assert row.usage is not None
        assert row.usage["estimated"] is True
        assert row.usage["prompt_tokens"] > 0
        assert row.usage["completion_tokens"] > 0
        assert row.usage["total_tokens"] == row.usage["prompt_tokens"] + row.usage["completion_tokens"]


async def test_a_reported_usage_is_stored_as_it_was(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """With the provider's usage chunk, results carry its counts and no "estimated" field."""
    await submit_file(redis, write("q.txt", QUESTIONS), config, batch="u")
    await run_burst_worker(config, redis_url)
    for row in await results(redis, "u"):
        assert row.usage is not None
        assert "estimated" not in row.usage
        assert row.usage["completion_tokens"] == 24  # the simulator's answer length


async def test_status_shows_the_tokens_as_estimated(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq status` shows ~N tokens and for how many jobs the provider reported none; --json counts them."""
    sim.configure(usage_chunk=False)
    await submit_file(redis, write("q.txt", QUESTIONS), config, batch="u")
    await run_burst_worker(config, redis_url)
    shown = askq("status", "u", env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "tokens" in line)
    assert "~" in row, row
    assert "the provider reported no usage for 2 jobs" in row, row
    assert " 0 (" not in row
    tokens = json.loads(askq("status", "u", "--json").stdout)["tokens"]
    assert tokens["estimated_jobs"] == 2
    assert tokens["prompt"] > 0
    assert tokens["completion"] > 0


def test_a_sum_with_an_estimate_is_an_estimate() -> None:
    """Adding an estimated usage to a reported one gives an estimate; two reported ones stay reported."""
    reported = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    guessed = Usage(prompt_tokens=5, completion_tokens=6, total_tokens=11, estimated=True)
    assert (reported + guessed).estimated is True
    assert (reported + reported).estimated is None
    assert json.loads((reported + reported).to_json()) == {
        "prompt_tokens": 6,
        "completion_tokens": 8,
        "total_tokens": 14,
    }


def test_a_sum_adds_cached_tokens_only_where_reported() -> None:
    """Cached prompt tokens add up when either side reported them, and stay absent when neither did."""
    cached = Usage(prompt_tokens=10, cached_tokens=4)
    plain = Usage(prompt_tokens=5)
    assert (cached + plain).cached_tokens == 4
    assert (cached + cached).cached_tokens == 8
    assert (plain + plain).cached_tokens is None
    assert "cached_tokens" not in json.loads((plain + plain).to_json())


def test_a_summary_with_estimated_usage_says_so() -> None:
    """A scheduled summary whose calls had no reported usage shows its tokens and cost as estimated."""
    usage = Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150, estimated=True)
    report = RunReport(
        schedule="nightly",
        run_id="run-1",
        trigger="cron",
        window_start=None,
        window_end=datetime(2026, 11, 30, 2, tzinfo=UTC),
        counts={"answers": 3},
        chunks=1,
        calls=1,
        reduce_levels=0,
        usage=usage,
        map_usage=Usage(),
        batch_api=False,
        model="gpt-4o-mini",
    )
    text = render(report, "All good.", AskqConfig().prices)
    assert "- tokens: ~120 in, ~30 out (estimated: the provider reported no usage); estimated cost ~$" in text
    reported = render(replace(report, usage=Usage(prompt_tokens=1)), "All good.", AskqConfig().prices)
    assert "~" not in reported
