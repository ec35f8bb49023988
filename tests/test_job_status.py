"""`askq status BATCH:ITEM`: one job's state, attempts, tokens, error and sources."""

from __future__ import annotations

import json
from pathlib import Path

from redis.asyncio import Redis

from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, results, run_burst_worker
from tests.knowledge_helpers import build_base, menu_config, questions_file


async def test_status_of_a_knowledge_job_shows_its_sources(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """The table names the job's state and each source with its score; --json has them as stored."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    await submit_file(
        redis, questions_file(tmp_path / "q.jsonl", ["wifi"]), config, batch="s", job_type="menu"
    )
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "s")
    assert row.sources is not None
    shown = askq("status", "s:wifi", env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "job s:wifi" in shown.stdout
    assert "succeeded" in shown.stdout
    first = row.sources[0]
    assert f"1. {first.file}#{first.chunk} ({first.score:.2f})" in shown.stdout
    document = json.loads(askq("status", "s:wifi", "--json").stdout)
    assert (document["status"], document["job_id"]) == ("succeeded", "s:wifi")
    assert document["sources"][0] == {
        "file": first.file,
        "chunk": first.chunk,
        "score": round(first.score, 4),
    }


async def test_status_of_a_plain_job_has_no_sources(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A job of a type without knowledge shows its state and carries no sources key."""
    config = menu_config(tmp_path)
    questions = tmp_path / "q.txt"
    questions.write_text("What is Redis?\n", encoding="utf-8")
    await submit_file(redis, questions, config, batch="p", job_type="qa")
    await run_burst_worker(config, redis_url)
    document = json.loads(askq("status", "p:1", "--json").stdout)
    assert (document["status"], document["attempts"]) == ("succeeded", 1)
    assert "sources" not in document


async def test_status_of_an_unknown_item_names_the_batch_and_how_to_list_its_jobs(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """An item the batch does not have, or a batch that does not exist: one line, exit 1."""
    config = menu_config(tmp_path)
    await submit_file(redis, questions_file(tmp_path / "q.jsonl", ["wifi"]), config, batch="s", job_type="qa")
    missing = askq("status", "s:nope")
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "askq: batch s has no item 'nope' (or its record expired): `askq status s --ids` lists its jobs\n"
    )
    unknown = askq("status", "nobatch:1")
    assert unknown.returncode == 1
    assert "unknown batch 'nobatch'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


async def test_status_keeps_the_answering_attempts_time_to_first_token(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """An ended job's document has its time to first token from its record (its events are gone)."""
    sim.configure(ttft_ms=200)
    config = menu_config(tmp_path)
    questions = tmp_path / "q.txt"
    questions.write_text("What is Redis?\n", encoding="utf-8")
    await submit_file(redis, questions, config, batch="t", job_type="qa")
    await run_burst_worker(config, redis_url)
    document = json.loads(askq("status", "t:1", "--json").stdout)
    assert document["status"] == "succeeded"
    assert document["first_token_ms"] >= 200  # the provider's delay before its first piece, at least


async def test_status_says_why_each_attempt_was_retried_until_the_job_runs_again(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """An ended job's document lists why its run retried each attempt; `askq retry` clears the list."""
    config = menu_config(tmp_path)
    questions = tmp_path / "q.txt"
    questions.write_text("[sim:500x2] Third time lucky?\n[sim:400] No\n", encoding="utf-8")
    await submit_file(redis, questions, config, batch="r", job_type="qa")
    await run_burst_worker(config, redis_url)
    lucky = json.loads(askq("status", "r:1", "--json").stdout)
    assert (lucky["status"], lucky["attempts"], lucky["retried"]) == (
        "succeeded",
        3,
        ["HTTP 500", "HTTP 500"],
    )
    refused = json.loads(askq("status", "r:2", "--json").stdout)
    assert (refused["status"], refused["retried"]) == ("failed", [])
    assert askq("retry", "r").returncode == 0
    assert json.loads(askq("status", "r:2", "--json").stdout)["retried"] == []
