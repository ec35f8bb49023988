"""A batch's event log is a live window: an ended job's events leave it, a live job's never do, and
every reader still gets each answer (from the log while it runs, from its stored result after)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.events import EventType, StreamEvent
from common.replay import entry_events
from common.status import JobState
from producer.control import cancel_batch
from producer.retry import retry_batch
from producer.submit import submit_file
from producer.tail import Finished, Gap, TailItem, follow_job
from tests.conftest import Simulator
from tests.helpers import (
    askq,
    eventually,
    final_text,
    keeping_events,
    logged_events,
    results,
    run_burst_worker,
)

BATCH = "w"
STREAM_NODE_BYTES = 4096
"""Redis's stream-node-max-bytes: an approximate trim drops whole nodes, so one may stay."""
WARNINGS = ("no longer in the event log", "oldest entry", "incomplete", "Traceback")


async def _submit(redis: Redis, config: AskqConfig, write: Any, questions: list[str]) -> list[str]:
    lines = "".join(json.dumps({"id": f"q{n}", "question": text}) + "\n" for n, text in enumerate(questions))
    await submit_file(redis, write("w.jsonl", lines), config, batch=BATCH)
    return [keys.job_id(BATCH, f"q{n}") for n in range(len(questions))]


def _limited(config: AskqConfig, jobs: int) -> AskqConfig:
    limits = config.limits.model_copy(update={"concurrency": jobs, "max_jobs": jobs})
    return config.model_copy(update={"limits": limits})


async def _log_events(redis: Redis) -> list[StreamEvent]:
    return [
        event for _, fields in await redis.xrange(keys.batch_log(BATCH)) for event in entry_events(fields)
    ]


def _events(items: list[TailItem]) -> list[StreamEvent]:
    return [item for item in items if isinstance(item, StreamEvent)]


async def test_an_ended_batch_leaves_its_log_almost_empty_and_its_results_whole(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Once every job has ended, the log keeps no job's text but the last end's neighbours; every
    answer is stored, and the live set is gone."""
    sim.configure(ttft_ms=5, tokens_per_s=5000, answer_tokens=200)
    await _submit(redis, config, write, [f"Question {n}, at some length please" for n in range(40)])
    await run_burst_worker(config, redis_url)
    rows = await results(redis, BATCH)
    assert [row.status for row in rows] == ["succeeded"] * 40
    answer_bytes = sum(len((row.answer or "").encode()) for row in rows)
    assert all(row.answer for row in rows)
    log_bytes = await redis.memory_usage(keys.batch_log(BATCH)) or 0
    assert log_bytes < STREAM_NODE_BYTES * 3 < answer_bytes / 4, (log_bytes, answer_bytes)
    ended_in_log = {event.job_id for event in await _log_events(redis) if event.type is EventType.DONE}
    assert len(ended_in_log) < 10, ended_in_log
    assert not await redis.exists(keys.batch_live(BATCH))


async def test_a_running_jobs_events_survive_other_jobs_ends(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A slow job among fast ones: the fast jobs that ended before it started leave the log, and a
    tail joining it after every fast job ended still gets all its events from the first."""
    sim.configure(ttft_ms=5, tokens_per_s=5000, answer_tokens=300)  # each fast job fills a stream node or so
    questions = (
        [f"Fast {n}" for n in range(6)] + ["Slow [sim:slow=4000]"] + [f"Fast {n}" for n in range(6, 16)]
    )
    job_ids = await _submit(redis, config, write, questions)
    slow = job_ids[6]
    worker = asyncio.create_task(run_burst_worker(_limited(config, 2), redis_url))

    async def fast_ones_ended() -> bool:
        rows = {row.job_id: row.status for row in await results(redis, BATCH)}
        return all(rows[job_id] == "succeeded" for job_id in job_ids if job_id != slow)

    await eventually(fast_ones_ended, timeout_s=30)
    assert (await results(redis, BATCH))[6].status == JobState.RUNNING.value  # still at its first token
    assert not [event for event in await _log_events(redis) if event.job_id == job_ids[0]]
    items = [item async for item in follow_job(redis, slow)]
    await worker
    events = _events(items)
    [row] = [row for row in await results(redis, BATCH) if row.job_id == slow]
    assert not [item for item in items if isinstance(item, Gap | Finished)]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type is EventType.START
    assert events[-1].type is EventType.DONE
    assert final_text(events) == row.answer


async def test_tail_of_a_finished_trimmed_batch_prints_every_answer(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq tail JOB` and `askq tail --batch` of an ended batch whose events left the log print every
    stored answer, with exit 0 and no warning."""
    sim.configure(ttft_ms=5, tokens_per_s=5000, answer_tokens=60)
    job_ids = await _submit(redis, config, write, [f"Tell me about {n}" for n in range(12)])
    await run_burst_worker(config, redis_url)
    assert len({event.job_id for event in await _log_events(redis)}) < len(job_ids)  # trimmed
    rows = {row.job_id: row for row in await results(redis, BATCH)}
    for job_id in job_ids:
        shown = askq("tail", job_id)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == (rows[job_id].answer or "")  # the stored answer, not a byte more
        assert not any(warning in shown.stderr for warning in WARNINGS), shown.stderr
    whole = askq("tail", "--batch", BATCH)
    assert whole.returncode == 0, whole.stderr
    assert not any(warning in whole.stderr for warning in WARNINGS), whole.stderr
    for job_id, row in rows.items():
        assert f"── {job_id.removeprefix(BATCH + ':')} ✓" in whole.stdout
        assert (row.answer or "") in whole.stdout
    lines = [json.loads(line) for line in askq("tail", "--batch", BATCH, "--json").stdout.splitlines()]
    ended = [line["job_id"] for line in lines if line["type"] == "result"]
    assert sorted(ended) == sorted(job_ids)
    assert not [line for line in lines if line["type"] == "unseen"]


async def test_a_job_retried_after_its_batch_ended_is_tailed_from_its_retry(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A failed job queued again once its batch ended: tail starts at the `retry` event, reports no
    gap for the earlier run's events that are gone, and ends with the new answer."""
    sim.configure(ttft_ms=5, tokens_per_s=5000, answer_tokens=300)
    questions = ["Fails for now [sim:500x4]"] + [f"Fine {n}" for n in range(12)]
    job_ids = await _submit(redis, config, write, questions)
    await run_burst_worker(_limited(config, 2), redis_url)  # the fine ones end after it
    assert (await results(redis, BATCH))[0].status == "failed"
    assert not await logged_events(redis, job_ids[0])  # its events left the log
    assert await retry_batch(redis, BATCH, config) == 1
    items = await _follow_while_working(redis, redis_url, config, job_ids[0])
    events = _events(items)
    [row] = [row for row in await results(redis, BATCH) if row.job_id == job_ids[0]]
    assert row.status == "succeeded"
    assert not [item for item in items if isinstance(item, Gap | Finished)]
    assert events[0].type is EventType.RETRY
    assert events[0].seq > 1
    assert [event.seq for event in events] == list(range(events[0].seq, events[0].seq + len(events)))
    assert final_text(events) == row.answer


async def _follow_while_working(
    redis: Redis, redis_url: str, config: AskqConfig, job_id: str
) -> list[TailItem]:
    """The job's tail items, the tail started before a burst worker runs the queue."""
    tail = asyncio.create_task(_collect(redis, job_id))
    await run_burst_worker(config, redis_url)
    return await asyncio.wait_for(tail, 20)  # it must end by itself once the job has ended


async def _collect(redis: Redis, job_id: str) -> list[TailItem]:
    return [item async for item in follow_job(redis, job_id)]


async def test_keep_ended_events_keeps_every_event(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """With `stream.keep_ended_events`, every ended job's events stay in the log, from its first."""
    sim.configure(ttft_ms=5, tokens_per_s=5000, answer_tokens=60)
    job_ids = await _submit(redis, config, write, [f"Keep {n}" for n in range(12)])
    await run_burst_worker(keeping_events(config), redis_url)
    rows = {row.job_id: row for row in await results(redis, BATCH)}
    for job_id in job_ids:
        events = await logged_events(redis, job_id)
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert events[-1].type is EventType.DONE
        assert final_text(events) == rows[job_id].answer


async def test_cancelled_queued_jobs_leave_the_log(
    redis: Redis, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq cancel` of queued jobs, a page at a time: only the last page's entry stays in the log."""
    await _submit(redis, config, write, [f"Never asked {n}" for n in range(600)])
    report = await cancel_batch(redis, BATCH, config)
    assert report.queued == 600
    assert await redis.xlen(keys.batch_log(BATCH)) == 1
    assert not await redis.exists(keys.batch_live(BATCH))
