"""Following a whole batch: every job's end once, the right totals, and with --follow every job's text."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from common.events import StreamEvent
from common.status import JobState
from producer.batch_tail import follow_batch
from producer.batch_tail_items import BatchItem, JobEnded, Progress
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import final_text, on_tty, results, run_burst_worker
from tests.test_cli import askq

QUESTIONS = [
    ("a", "What is a queue?"),
    ("b", "What is a stream?"),
    ("c", "Flaky first [sim:500]"),
    ("d", "Refused [sim:400]"),
    ("e", "Cut once [sim:cut]"),
    ("f", "Refused too [sim:422]"),
]


async def _submit(redis: Redis, config: AskqConfig, write: Any) -> None:
    lines = "".join(json.dumps({"id": item, "question": question}) + "\n" for item, question in QUESTIONS)
    await submit_file(redis, write("batch.jsonl", lines), config, batch="bt")


async def _follow_while_working(
    redis: Redis, redis_url: str, config: AskqConfig, *, follow: bool
) -> list[BatchItem]:
    collector = asyncio.create_task(_collect(redis, follow=follow))
    await run_burst_worker(config, redis_url)
    return await asyncio.wait_for(collector, 20)  # it must end by itself once the batch is done


async def _collect(redis: Redis, *, follow: bool) -> list[BatchItem]:
    return [item async for item in follow_batch(redis, "bt", follow=follow)]


async def test_every_end_is_reported_once_with_the_stored_result(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A live batch tail sees each job end once, with its stored answer or error, and final totals."""
    sim.configure(ttft_ms=10, tokens_per_s=1000, answer_tokens=30)
    await _submit(redis, config, write)
    items = await _follow_while_working(redis, redis_url, config, follow=False)
    ended = [item for item in items if isinstance(item, JobEnded)]
    stored = {row.job_id: row for row in await results(redis, "bt")}
    assert sorted(item.job_id for item in ended) == sorted(stored)
    for item in ended:
        assert item.state.value == stored[item.job_id].status
        assert item.answer == (stored[item.job_id].answer or "")
        assert item.attempts == stored[item.job_id].attempts
    last = [item for item in items if isinstance(item, Progress)][-1].status
    assert last.counts[JobState.SUCCEEDED] == 4
    assert last.counts[JobState.FAILED] == 2
    assert not any(isinstance(item, StreamEvent) for item in items)  # text only with follow


async def test_follow_streams_every_jobs_text(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """With follow, each job's events arrive in order, contiguous, and rebuild its stored answer."""
    sim.configure(ttft_ms=10, tokens_per_s=800, answer_tokens=60)
    await _submit(redis, config, write)
    items = await _follow_while_working(redis, redis_url, config, follow=True)
    by_job: dict[str, list[StreamEvent]] = defaultdict(list)
    for item in items:
        if isinstance(item, StreamEvent):
            by_job[item.job_id].append(item)
    stored = {row.job_id: row for row in await results(redis, "bt")}
    assert set(by_job) == set(stored)
    for job_id, events in by_job.items():
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert events[-1].type.is_final
        assert final_text(events) == (stored[job_id].answer or "")
    ended_at = {item.job_id: index for index, item in enumerate(items) if isinstance(item, JobEnded)}
    last_event_at = {job_id: items.index(events[-1]) for job_id, events in by_job.items()}
    assert all(last_event_at[job_id] < ended_at[job_id] for job_id in stored)


async def test_cli_batch_tail_of_a_finished_batch(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """askq tail --batch prints each answer and failure, and exits 1 because some jobs failed."""
    await _submit(redis, config, write)
    await run_burst_worker(config, redis_url)
    stored = {row.item_id: row for row in await results(redis, "bt")}
    shown = askq("tail", "--batch", "bt")
    assert shown.returncode == 1, shown.stderr
    assert "Traceback" not in shown.stderr
    for item_id, row in stored.items():
        if row.status == "succeeded":
            assert f"── {item_id} ✓" in shown.stdout
            assert row.answer
            assert row.answer in shown.stdout
        else:
            assert f"── {item_id} ✗ failed after 1 attempt: {row.error}" in shown.stdout
    as_json = askq("tail", "--batch", "bt", "--json")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    ended = [line for line in lines if line["type"] == "result"]
    assert as_json.returncode == 1
    assert sorted(line["job_id"] for line in ended) == sorted(f"bt:{item}" for item in stored)
    assert sum(line["state"] == "failed" for line in ended) == 2


async def test_cli_tail_arguments_are_checked(redis: Redis) -> None:
    """tail needs exactly one of JOB_ID and --batch; --follow only with --batch; unknown batch is one line."""
    for args in (("tail",), ("tail", "b:1", "--batch", "b"), ("tail", "b:1", "--follow")):
        result = askq(*args)
        assert result.returncode == 2
        assert "tail:" in result.stderr
    unknown = askq("tail", "--batch", "nope")
    assert unknown.returncode == 1
    assert "unknown batch 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


async def test_a_finished_batch_shows_no_rate(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """tail --batch of a batch that had ended shows its counts but no jobs/s: none ended while it watched."""
    await _submit(redis, config, write)
    await run_burst_worker(config, redis_url)
    status, written = on_tty("tail", "--batch", "bt", env={"NO_COLOR": "1"})
    shown = written.decode()
    assert status == 1  # some of its jobs failed
    assert "6/6" in shown
    assert "/s" not in shown
