"""askq retry and askq cancel: only the chosen jobs move, counters add up, readers see the latest end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.errors import NotFoundError
from common.events import EventType, StreamEvent
from common.status import JobState
from producer.batches import batch_status
from producer.control import cancel_batch
from producer.retry import retry_batch
from producer.submit import submit_file
from producer.tail import TailItem, follow_job
from tests.conftest import Simulator
from tests.helpers import eventually, final_text, keeping_events, logged_events, results, run_burst_worker

# The policy allows 4 attempts: "500x4" fails a first run and lets the re-run's attempt succeed.
MIXED = [
    {"id": "good-1", "question": "first"},
    {"id": "transient", "question": "[sim:500x4] then fine"},
    {"id": "good-2", "question": "second"},
    {"id": "permanent", "question": "[sim:400] never fine"},
    {
        "custom_id": "batch-line",
        "body": {
            "model": "sim-large",
            "temperature": 0.3,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "[sim:500x4] batch api"},
            ],
        },
    },
]


async def _submit(redis: Redis, config: AskqConfig, write: Any, lines: list[dict[str, Any]]) -> None:
    path = write("mixed.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="b")


async def test_retry_reruns_only_the_failed_items(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Failed jobs go back to the queue and run again; succeeded ones are not asked twice."""
    await _submit(redis, config, write, MIXED)
    await run_burst_worker(config, redis_url)
    before = await batch_status(redis, "b")
    assert (before.counts[JobState.SUCCEEDED], before.counts[JobState.FAILED]) == (2, 3)

    assert await retry_batch(redis, "b", config) == 3
    queued = await batch_status(redis, "b")
    assert (queued.counts[JobState.QUEUED], queued.counts[JobState.FAILED]) == (3, 0)
    await run_burst_worker(config, redis_url)

    by_id = {result.item_id: result for result in await results(redis, "b")}
    assert len(by_id) == len(MIXED)
    assert {item: result.status for item, result in by_id.items()} == {
        "good-1": "succeeded",
        "transient": "succeeded",
        "good-2": "succeeded",
        "permanent": "failed",
        "batch-line": "succeeded",
    }
    assert by_id["transient"].error is None  # the earlier run's error went with its result
    assert by_id["batch-line"].model == "sim-large"  # the re-run sent the line's own request
    attempts = sim.stats()["attempts"]
    assert attempts["first"] == attempts["second"] == 1
    assert attempts["[sim:500x4] then fine"] == 5
    assert attempts["[sim:400] never fine"] == 2
    after = await batch_status(redis, "b")
    assert after.counts == {
        JobState.QUEUED: 0,
        JobState.RUNNING: 0,
        JobState.SUCCEEDED: 4,
        JobState.FAILED: 1,
        JobState.CANCELLED: 0,
    }
    assert await retry_batch(redis, "b", config) == 1  # only the one still failed


async def test_tail_follows_a_retried_job_past_its_old_end(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A tail begun after `askq retry` does not stop at the first run's `failed`; it ends with the re-run
    (the first run's events kept, as `stream.keep_ended_events` does)."""
    config = keeping_events(config)
    await _submit(redis, config, write, MIXED[1:2])
    await run_burst_worker(config, redis_url)
    await retry_batch(redis, "b", config)

    async def tail() -> list[TailItem]:
        return [item async for item in follow_job(redis, "b:transient", block_ms=100)]

    reader = asyncio.create_task(tail())
    await run_burst_worker(config, redis_url)
    items = await asyncio.wait_for(reader, 10)
    events = [item for item in items if isinstance(item, StreamEvent)]
    kinds = [event.type for event in events]
    assert kinds.index(EventType.FAILED) < kinds.index(EventType.DONE) == len(kinds) - 1
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    (stored,) = await results(redis, "b")
    assert final_text(events) == stored.answer


async def test_cancel_stops_queued_jobs_and_aborts_running_ones(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """Queued jobs never start, running ones are aborted mid-stream, all are recorded cancelled;
    a retry runs them on with their events numbered on."""
    sim.configure(tokens_per_s=20, answer_tokens=400)  # 20 s an answer: only an abort ends it sooner
    config = AskqConfig.model_validate(
        # Their events are read once they have ended: kept.
        {"limits": {"concurrency": 2, "max_jobs": 2}, "stream": {"keep_ended_events": True}}
    )
    await _submit(redis, config, write, [{"id": str(n), "question": f"q{n}"} for n in range(6)])
    worker = asyncio.create_task(run_burst_worker(config, redis_url))

    async def two_streaming() -> bool:
        return all([len(await logged_events(redis, f"b:{n}")) >= 3 for n in (0, 1)])

    await eventually(two_streaming)
    report = await cancel_batch(redis, "b", config)
    assert (report.queued, report.running) == (4, 2)
    await asyncio.wait_for(worker, 10)

    status = await batch_status(redis, "b")
    assert status.counts[JobState.CANCELLED] == 6
    assert status.finished == 6
    assert await redis.zcard(keys.QUEUE) == 0
    for n in range(6):
        events = await logged_events(redis, f"b:{n}")
        assert events[-1].type is EventType.CANCELLED, n
        assert (EventType.START in [event.type for event in events]) == (n < 2)
    assert sim.stats()["requests_total"] == 2
    assert {result.status for result in await results(redis, "b")} == {"cancelled"}

    # Run again, each job's numbering goes on past its cancellation, whoever announced it.
    sim.configure(tokens_per_s=0)
    assert await retry_batch(redis, "b", config, include_cancelled=True) == 6
    await run_burst_worker(config, redis_url)
    for n in range(6):
        events = await logged_events(redis, f"b:{n}")
        assert [event.seq for event in events] == list(range(1, len(events) + 1)), n
        assert events[-1].type is EventType.DONE, n


async def test_cancelled_jobs_rerun_only_when_asked(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Plain retry leaves cancelled jobs alone; retry --cancelled resumes them."""
    await _submit(redis, config, write, MIXED[:1])
    await cancel_batch(redis, "b", config)
    assert await retry_batch(redis, "b", config) == 0
    assert await retry_batch(redis, "b", config, include_cancelled=True) == 1
    await run_burst_worker(config, redis_url)
    assert [result.status for result in await results(redis, "b")] == ["succeeded"]


async def test_unknown_batch_is_refused(redis: Redis, config: AskqConfig) -> None:
    """retry and cancel of a batch that does not exist raise NotFoundError naming it."""
    with pytest.raises(NotFoundError, match="'nope'"):
        await retry_batch(redis, "nope", config)
    with pytest.raises(NotFoundError, match="'nope'"):
        await cancel_batch(redis, "nope", config)
