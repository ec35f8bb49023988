"""Connections to Redis reset at random under two real ``askq worker`` processes (uvloop): nothing is
lost, stuck or told twice, and the workers live on."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from bench.reset_proxy import reset_proxy
from common import keys
from common.config import load_config
from common.events import EventType, StreamEvent
from common.replay import entry_events
from common.status import JobState
from producer.batches import batch_status
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, eventually
from tests.test_faults import _config_file, worker_process

QUESTIONS = 300
BATCH = "resets"
RESET_EVERY_S = "0.02,0.1"
"""Denser than the chaos run's, so a batch of a few seconds sees dozens of resets."""


async def test_connection_resets_lose_nothing_and_kill_no_worker(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Resets every 0.02-0.1 s until the batch ends: one result per item, counters equal to the results
    file, no job left queued or running, every job's events in the log with contiguous seqs and a
    done, both workers alive with no traceback."""
    sim.configure(ttft_ms=5, tokens_per_s=100, answer_tokens=24)  # a quarter of a second each
    config = _config_file(tmp_path, concurrency=8, max_jobs=8, lease_s=3)
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(QUESTIONS))
    )
    await submit_file(redis, questions, load_config(config), batch=BATCH)
    port = int(redis_url.rsplit(":", 1)[1])
    with reset_proxy(port, seed=17, reset_every_s=RESET_EVERY_S) as proxy:
        through_proxy = proxy.url(redis_url)
        with (
            worker_process(tmp_path, "a", config, through_proxy, sim) as first,
            worker_process(tmp_path, "b", config, through_proxy, sim) as second,
        ):
            await _settles(redis, _batch_done, 180)
            proxy.pause()
            # Events still waiting in a relay reach the log once Redis can be reached.
            await _settles(redis, _every_job_ended_in_log, 30)
            alive = [first.poll(), second.poll()]
        counts = proxy.stop()
    assert counts["resets"] >= 5, counts  # the faults happened
    assert alive == [None, None], f"a worker exited: {alive}"
    for name in ("a", "b"):
        said = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in said, f"worker {name} logged a traceback:\n{said[-3000:]}"

    results_file = tmp_path / "results.jsonl"
    done = askq("results", BATCH, "-o", str(results_file))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(f"q{n}" for n in range(QUESTIONS))
    assert {row["status"] for row in rows} == {"succeeded"}, [r for r in rows if r["status"] != "succeeded"]
    status = await batch_status(redis, BATCH, with_job_ids=False)
    assert status.counts[JobState.SUCCEEDED] == len(rows)
    assert status.counts[JobState.QUEUED] == status.counts[JobState.RUNNING] == 0
    assert await redis.zcard(keys.QUEUE) == 0  # nothing left for arq to start

    by_job = await _events_by_job(redis)
    for row in rows:
        events = by_job[row["job_id"]]
        by_seq: dict[int, StreamEvent] = {}
        for event in events:
            # A resend repeats an event whole; a seq told twice with different events is a second run
            # writing under numbers it does not own.
            assert by_seq.setdefault(event.seq, event) == event, (row["job_id"], event.seq)
        assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), row["job_id"]
        assert by_seq[len(by_seq)].type is EventType.DONE, row["job_id"]
        assert "".join(e.text or "" for e in _last_run(by_seq) if e.type is EventType.DELTA) == row["answer"]


async def _settles(redis: Redis, check: Callable[[Redis], Awaitable[bool]], timeout_s: float) -> None:
    """``eventually``, failing with what the batch looks like then: its counters and jobs without an end."""
    try:
        await eventually(lambda: check(redis), timeout_s=timeout_s)
    except AssertionError:
        status = await batch_status(redis, BATCH, with_job_ids=False)
        by_job = await _events_by_job(redis)
        ended = {job for job, events in by_job.items() if any(e.type is EventType.DONE for e in events)}
        no_end = sorted({f"{BATCH}:q{n}" for n in range(QUESTIONS)} - ended)
        counts = {state.value: count for state, count in status.counts.items()}
        raise AssertionError(
            f"not settled in {timeout_s:g} s: {counts}, {len(no_end)} jobs without a done event: {no_end[:5]}"
        ) from None


async def _batch_done(redis: Redis) -> bool:
    return (await batch_status(redis, BATCH, with_job_ids=False, with_latencies=False)).done


async def _events_by_job(redis: Redis) -> dict[str, list[StreamEvent]]:
    by_job: dict[str, list[StreamEvent]] = defaultdict(list)
    for _, fields in await redis.xrange(keys.batch_log(BATCH)):
        for event in entry_events(fields):
            by_job[event.job_id].append(event)
    return by_job


async def _every_job_ended_in_log(redis: Redis) -> bool:
    by_job = await _events_by_job(redis)
    ended = [job for job, events in by_job.items() if any(e.type is EventType.DONE for e in events)]
    return len(ended) == QUESTIONS


def _last_run(by_seq: dict[int, StreamEvent]) -> list[StreamEvent]:
    events = [by_seq[seq] for seq in sorted(by_seq)]
    starts = [index for index, event in enumerate(events) if event.type is EventType.START]
    return events[starts[-1] :] if starts else events
