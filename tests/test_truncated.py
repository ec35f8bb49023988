"""Answers cut at max_tokens (finish_reason "length") are visible: in results, status and tail."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, keeping_events, run_burst_worker

CAP = 5
"""max_tokens of the cut line; the simulator's answers are 24 tokens."""


async def _one_cut_one_whole(redis: Redis, redis_url: str, config: AskqConfig, write: Any) -> None:
    lines = [
        {"id": "whole", "question": "Why is the sky blue?"},
        {"id": "cut", "question": "Why?", "max_tokens": CAP},
    ]
    path = write("t.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="t")
    await run_burst_worker(config, redis_url)


async def test_jsonl_results_carry_the_finish_reason(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Each JSONL result says why its answer ended: "length" for the cut one, "stop" for the other."""
    await _one_cut_one_whole(redis, redis_url, config, write)
    done = askq("results", "t")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert rows["cut"]["finish_reason"] == "length"
    assert rows["whole"]["finish_reason"] == "stop"


async def test_status_counts_the_truncated_answers(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq status` says how many answers were cut at max_tokens, and --json gives the count."""
    await _one_cut_one_whole(redis, redis_url, config, write)
    shown = askq("status", "t")
    assert shown.returncode == 0, shown.stderr
    assert "cut at max_tokens" in shown.stdout
    row = next(line for line in shown.stdout.splitlines() if "cut at max_tokens" in line)
    assert "1" in row
    as_json = json.loads(askq("status", "t", "--json").stdout)
    assert as_json["truncated"] == 1


async def test_tail_says_where_the_answer_was_cut(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq tail` of a cut answer ends with "cut at max_tokens (N)" on stderr, from its events or its
    stored result; stdout holds the answer alone, and a whole answer gets no such notice."""
    for kept in (True, False):
        await redis.flushdb()
        await _one_cut_one_whole(redis, redis_url, keeping_events(config) if kept else config, write)
        cut = askq("tail", "t:cut")
        assert cut.returncode == 0, cut.stderr
        assert f"cut at max_tokens ({CAP})" in cut.stderr, (kept, cut.stderr)
        assert "cut at max_tokens" not in cut.stdout
        whole = askq("tail", "t:whole")
        assert "cut at max_tokens" not in whole.stderr + whole.stdout
