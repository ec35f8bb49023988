"""End to end: a file submitted, answered by a burst worker against the simulator, results in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

import producer.submit
from common import keys
from common.config import AskqConfig
from producer.batches import batch_status
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker

ITEMS = 300


def _questions(n: int) -> list[str]:
    return [
        f"Question number {i}: what is {i} squared?" if i % 7 else f"질문 {i}: 서울은 어디에 있나요?"
        for i in range(n)
    ]


def _jsonl(questions: list[str]) -> str:
    return "".join(
        json.dumps({"id": f"q{i}", "question": q}, ensure_ascii=False) + "\n" for i, q in enumerate(questions)
    )


def _txt(questions: list[str]) -> str:
    return "\n".join(questions) + "\n"


def _csv(questions: list[str]) -> str:
    rows = "".join(f'q{i},"{q}"\n' for i, q in enumerate(questions))
    return "id,question\n" + rows


def _openai_batch(questions: list[str]) -> str:
    lines = []
    for i, q in enumerate(questions):
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": q}], "max_tokens": 50}
        line = {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return "".join(lines)


FORMATS = {
    "jsonl": (".jsonl", _jsonl),
    "txt": (".txt", _txt),
    "csv": (".csv", _csv),
    "batch": (".jsonl", _openai_batch),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_every_format_answers_every_item_in_input_order(
    fmt: str, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Each input format yields one succeeded result per question, in file order, equal to its question."""
    suffix, render = FORMATS[fmt]
    questions = _questions(ITEMS)
    path: Path = write(f"questions{suffix}", render(questions))
    report = await submit_file(redis, path, config, batch=f"e2e-{fmt}")
    assert (report.items, report.enqueued) == (ITEMS, ITEMS)

    await run_burst_worker(config, redis_url)

    rows = await results(redis, f"e2e-{fmt}")
    assert [row.question for row in rows] == questions
    assert {row.status for row in rows} == {"succeeded"}
    assert all(row.answer and row.usage and row.usage["completion_tokens"] > 0 for row in rows)
    status = await batch_status(redis, f"e2e-{fmt}")
    assert status.done
    assert status.counts["succeeded"] == ITEMS
    assert status.counts["queued"] == 0
    assert status.latency_p50_ms is not None
    assert status.completion_tokens > 0


async def test_batch_api_lines_keep_their_model(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """An OpenAI Batch API line's own model is used, and results name it."""
    path = write("b.jsonl", _openai_batch(["Which model answers this?"]))
    await submit_file(redis, path, config, batch="models")
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "models")
    assert row.model == "gpt-4o"
    assert row.item_id == "q0"


async def test_resubmitting_the_same_file_enqueues_nothing_new(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """The second submission of a file to its batch adds no job, before and after it was answered."""
    path = write("q.txt", _txt(_questions(20)))
    first = await submit_file(redis, path, config)
    again = await submit_file(redis, path, config)
    assert first.batch == again.batch  # the default batch name comes from the content
    assert (again.enqueued, again.skipped_existing) == (0, 20)
    await run_burst_worker(config, redis_url)
    after = await submit_file(redis, path, config)
    assert after.enqueued == 0
    status = await batch_status(redis, first.batch)
    assert status.total == 20
    assert status.counts["succeeded"] == 20
    assert sim.stats()["requests_total"] == 20


async def test_a_chunk_is_queued_at_the_time_it_is_written(
    redis: Redis, config: AskqConfig, write: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long submit's later chunks are scored when written, not when the submit began, so they never
    land behind where workers' claims start; scores still rise in file order."""
    clock = iter(range(1_000_000, 10**9, 10))  # ten seconds later at every reading
    monkeypatch.setattr(
        producer.submit, "time", type("Clock", (), {"time": staticmethod(lambda: next(clock))})
    )
    lines = producer.submit.CHUNK_ITEMS * 2 + 1
    await submit_file(
        redis, write("long.txt", "".join(f"q{n}?\n" for n in range(lines))), config, batch="clock"
    )
    scores = [await redis.zscore(keys.QUEUE, f"clock:{n}") for n in range(1, lines + 1)]
    assert scores == sorted(scores)
    first, second = scores[0], scores[producer.submit.CHUNK_ITEMS]
    assert second - first >= 10_000  # ms: the second chunk was written ten seconds later
