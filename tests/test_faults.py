"""Fault injection with real processes and signals: killed and stopped workers, a restarted Redis.

Every test ends with the same check: one result per input item, each succeeded, none recorded twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from askq.stack import embedded_redis, free_port, stop
from common import keys, record
from common.config import AskqConfig, load_config
from common.errors import NotFoundError
from common.events import EventType, StreamEvent
from common.status import JobState
from producer.batches import batch_status
from producer.control import cancel_batch
from producer.retry import retry_batch
from producer.submit import submit_file
from producer.tail import follow_job
from tests.conftest import Simulator
from tests.helpers import eventually, final_text, logged_events, results, run_burst_worker, seqs_reused

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = 12


def _config_file(tmp_path: Path, **limits: Any) -> Path:
    path = tmp_path / "jobs.yaml"
    config = {
        "limits": {"concurrency": 4, "max_jobs": 4, "lease_s": 1, **limits},
        "retry": {"attempts": 4, "initial_wait_s": 0.05, "max_wait_s": 0.2, "jitter_s": 0.05},
        # Each job's events are followed once its batch has ended: the event history is kept.
        "stream": {"keep_ended_events": True},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def worker_process(
    tmp_path: Path, name: str, config: Path, redis_url: str, sim: Simulator
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": redis_url, "OPENAI_BASE_URL": sim.base_url, "ASKQ_CONFIG": str(config)}
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "askq.cli", "worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        stop(process)
        log.close()


def _submit(tmp_path: Path, redis_url: str, config: Path, batch: str) -> None:
    _submit_n(tmp_path, redis_url, config, batch, QUESTIONS)


def _submit_n(tmp_path: Path, redis_url: str, config: Path, batch: str, count: int) -> None:
    """``askq submit`` of ``count`` questions, as a person would."""
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(count))
    )
    env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "askq.cli", "submit", str(questions), "--batch", batch],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def _streaming_jobs(redis: Redis, batch: str, min_events: int) -> list[str]:
    """Jobs of the batch that are running and have streamed at least ``min_events`` events."""
    job_ids = (await batch_status(redis, batch)).job_ids
    lengths = [len(await logged_events(redis, job_id)) for job_id in job_ids]
    states = [await redis.hget(keys.job_record(job_id), "state") for job_id in job_ids]
    return [
        job_id
        for job_id, length, state in zip(job_ids, lengths, states, strict=True)
        if length >= min_events and state == JobState.RUNNING.value.encode()
    ]


async def _batch_done(redis: Redis, batch: str) -> bool:
    return (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).done


async def _assert_complete_and_single(redis: Redis, batch: str) -> None:
    rows = await results(redis, batch)
    assert len(rows) == QUESTIONS
    assert len({row.item_id for row in rows}) == QUESTIONS
    assert all(row.status == "succeeded" for row in rows), [(row.item_id, row.error) for row in rows]
    status = await batch_status(redis, batch)
    assert status.counts[JobState.SUCCEEDED] == QUESTIONS  # counted once each
    for row in rows:
        # As a reader sees them: a resend after an outage may log an event twice; tail drops repeats.
        items = [item async for item in follow_job(redis, row.job_id)]
        events = [item for item in items if isinstance(item, StreamEvent)]
        assert len(events) == len(items), "a gap or a fallback: events were lost"
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert final_text(events) == row.answer


async def test_a_killed_worker_s_jobs_are_run_again_by_another(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """SIGKILL mid-stream: a second worker picks the jobs up within the lease; one result each."""
    sim.configure(ttft_ms=20, tokens_per_s=60, answer_tokens=90)
    config = _config_file(tmp_path)
    _submit(tmp_path, redis_url, config, "kill")
    with worker_process(tmp_path, "a", config, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "kill"), timeout_s=30)
        streaming = await _streaming_jobs(redis, "kill", 3)
        first.send_signal(signal.SIGKILL)
        killed_at = time.time()
        first.wait(10)
        with worker_process(tmp_path, "b", config, redis_url, sim):
            await eventually(lambda: _batch_done(redis, "kill"), timeout_s=60)
    await _assert_complete_and_single(redis, "kill")
    for job_id in streaming:
        events = await logged_events(redis, job_id)
        restart = next(event for event in events if event.type is EventType.RETRY)
        assert "stopped mid-way" in (restart.error or "")
        assert restart.ts - killed_at < 10  # within the 1 s lease, far from arq's own 10 minutes
    attempts = sim.stats()["attempts"]
    assert sum(attempts.values()) <= QUESTIONS + 4  # only what the killed worker held ran twice


async def _has_streaming(redis: Redis, batch: str) -> bool:
    return len(await _streaming_jobs(redis, batch, 3)) >= 2


async def test_sigterm_lets_running_jobs_finish_and_takes_no_more(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """SIGTERM mid-stream: the worker finishes what it holds within the grace, then exits 0."""
    sim.configure(ttft_ms=20, tokens_per_s=100, answer_tokens=60)
    config = _config_file(tmp_path, shutdown_grace_s=20)
    _submit(tmp_path, redis_url, config, "term")
    with worker_process(tmp_path, "a", config, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "term"), timeout_s=30)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    status = await batch_status(redis, "term")
    assert status.counts[JobState.RUNNING] == 0
    assert 2 <= status.counts[JobState.SUCCEEDED] <= 4  # what it held, and nothing more
    assert status.counts[JobState.QUEUED] == QUESTIONS - status.counts[JobState.SUCCEEDED]
    with worker_process(tmp_path, "b", config, redis_url, sim):
        await eventually(lambda: _batch_done(redis, "term"), timeout_s=60)
    await _assert_complete_and_single(redis, "term")
    assert set(sim.stats()["attempts"].values()) == {1}  # nothing was asked twice


async def test_sigterm_past_the_grace_requeues_at_once(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Jobs still running when the grace ends go back to the queue at once, announced, not after a lease."""
    sim.configure(ttft_ms=20, tokens_per_s=30, answer_tokens=150)  # 5 s answers, 1 s grace
    config = _config_file(tmp_path, shutdown_grace_s=1, lease_s=600)
    _submit(tmp_path, redis_url, config, "grace")
    with worker_process(tmp_path, "a", config, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "grace"), timeout_s=30)
        held = await _streaming_jobs(redis, "grace", 1)
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    status = await batch_status(redis, "grace")
    assert status.counts[JobState.RUNNING] == 0
    assert status.counts[JobState.QUEUED] == QUESTIONS
    for job_id in held:
        assert not await redis.exists(keys.arq_in_progress(job_id))  # no claim left to expire
        last = (await logged_events(redis, job_id))[-1]
        assert last.type is EventType.RETRY
        assert "worker is stopping" in (last.error or "")
    sim.configure(tokens_per_s=0)
    with worker_process(tmp_path, "b", config, redis_url, sim):
        await eventually(lambda: _batch_done(redis, "grace"), timeout_s=30)  # a 600 s lease never expired
    await _assert_complete_and_single(redis, "grace")
    # What the handed-back runs spent is counted: attempts as the provider saw them, tokens estimated.
    rows = await results(redis, "grace")
    assert sum(row.attempts for row in rows) == sim.stats()["requests_total"]
    assert (await batch_status(redis, "grace")).lost_completion_tokens_est > 0


async def test_a_second_signal_stops_at_once(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Ctrl-C twice: the second signal does not wait out the grace; running jobs go back to the
    queue at once, announced, and the worker exits 0 with no job left running."""
    sim.configure(ttft_ms=20, tokens_per_s=30, answer_tokens=150)  # 5 s answers
    config = _config_file(tmp_path, shutdown_grace_s=600, lease_s=600)
    _submit(tmp_path, redis_url, config, "twice")
    with worker_process(tmp_path, "a", config, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "twice"), timeout_s=30)
        held = await _streaming_jobs(redis, "twice", 1)
        first.send_signal(signal.SIGINT)
        # Two signals sent at once arrive as one: the second goes once the first was taken.
        await eventually(lambda: _logged(tmp_path / "a.log", "signal again to stop now"), timeout_s=30)
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 0  # a 600 s grace: only the second signal explains an exit now
    status = await batch_status(redis, "twice")
    assert status.counts[JobState.RUNNING] == 0
    assert status.counts[JobState.QUEUED] == QUESTIONS
    for job_id in held:
        last = (await logged_events(redis, job_id))[-1]
        assert last.type is EventType.RETRY
        assert "worker is stopping" in (last.error or "")
    log = (tmp_path / "a.log").read_text()
    assert "second signal: stopping now" in log


async def test_cancel_then_retry_loses_no_job_with_a_live_worker(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """cancel and retry --cancelled back to back while a worker runs the jobs: whether the worker
    aborts a run before or after the retry, every job runs again and ends succeeded, none is left
    queued with no arq job (all running jobs were lost this way)."""
    sim.configure(ttft_ms=20, tokens_per_s=30, answer_tokens=90)  # 3 s answers
    config_path = _config_file(tmp_path, shutdown_grace_s=1)
    config = load_config(config_path)
    _submit(tmp_path, redis_url, config_path, "again")
    with worker_process(tmp_path, "a", config_path, redis_url, sim):
        await eventually(lambda: _has_streaming(redis, "again"), timeout_s=30)
        cancelled = await cancel_batch(redis, "again", config)
        assert cancelled.running >= 2
        await retry_batch(redis, "again", config, include_cancelled=True)
        sim.configure(tokens_per_s=0)
        await eventually(lambda: _batch_done(redis, "again"), timeout_s=60)
    await _assert_complete_and_single(redis, "again")
    await _assert_no_seq_reused(redis, "again")


async def test_cancel_then_retry_loses_no_job_after_its_worker_died(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Jobs running on a worker killed with -9, then cancelled and retried: the abort the cancel asked
    for is not taken for the new run ("aborted before start" dropped it), and every job succeeds."""
    sim.configure(ttft_ms=20, tokens_per_s=30, answer_tokens=90)
    config_path = _config_file(tmp_path)  # lease_s 1: a dead worker's jobs are free within a second
    config = load_config(config_path)
    _submit(tmp_path, redis_url, config_path, "orphans")
    with worker_process(tmp_path, "a", config_path, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "orphans"), timeout_s=30)
        first.kill()
        first.wait(30)
    cancelled = await cancel_batch(redis, "orphans", config)
    assert cancelled.running >= 2
    await retry_batch(redis, "orphans", config, include_cancelled=True)
    sim.configure(tokens_per_s=0)
    with worker_process(tmp_path, "b", config_path, redis_url, sim):
        await eventually(lambda: _batch_done(redis, "orphans"), timeout_s=60)
    rows = await results(redis, "orphans")
    assert [row.status for row in rows] == ["succeeded"] * QUESTIONS, [
        (row.item_id, row.error) for row in rows
    ]
    assert (await batch_status(redis, "orphans")).counts[JobState.SUCCEEDED] == QUESTIONS
    await _assert_no_seq_reused(redis, "orphans")


async def test_a_cancelled_job_whose_worker_died_is_let_go_by_the_next_worker(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Cancelled while its worker was dead: the next worker takes it from the queue, finds it
    aborted before it starts, and lets it go for good: no longer stopping (a retry need not wait) and
    no longer live (the batch's log can be trimmed past its events)."""
    sim.configure(ttft_ms=20, tokens_per_s=30, answer_tokens=90)
    config_path = _config_file(tmp_path)  # lease_s 1
    config = load_config(config_path)
    _submit(tmp_path, redis_url, config_path, "dropped")
    with worker_process(tmp_path, "a", config_path, redis_url, sim) as first:
        await eventually(lambda: _has_streaming(redis, "dropped"), timeout_s=30)
        first.kill()
        first.wait(30)
    aborting = (await cancel_batch(redis, "dropped", config)).aborted
    assert aborting
    with worker_process(tmp_path, "b", config_path, redis_url, sim):
        await eventually(lambda: _none_left_in_queue(redis, aborting), timeout_s=30)
    for job_id in aborting:
        assert not await redis.hexists(keys.job_record(job_id), record.STOPPING), job_id  # type: ignore[misc]  # redis-py types sync and async alike
        assert await redis.zscore(keys.batch_live("dropped"), job_id) is None, job_id


async def _none_left_in_queue(redis: Redis, job_ids: list[str]) -> bool:
    return all([await redis.zscore(keys.QUEUE, job_id) is None for job_id in job_ids])


async def _assert_no_seq_reused(redis: Redis, batch: str) -> None:
    """No event number of any job carries two different events: the killed or aborted run's and the
    retry's are told apart by every reader."""
    for row in await results(redis, batch):
        reused = await seqs_reused(redis, row.job_id)
        assert not reused, f"{row.job_id}: seqs used for different events: {reused}"


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    """A private redis-server with AOF in a temporary folder, and functions to stop and start it."""
    port = free_port()
    data = tmp_path / "aof"
    aof = ("--appendonly", "yes", "--appendfsync", "everysec")
    stack: list[Any] = []

    def start() -> str:
        server = embedded_redis(data, extra_args=aof, port=port)
        url = server.__enter__()
        stack.append(server)
        return url

    def shut_down() -> None:
        stack.pop().__exit__(None, None, None)

    url = start()
    try:
        yield url, shut_down, start
    finally:
        for server in stack:
            server.__exit__(None, None, None)


async def test_a_redis_restart_mid_batch_loses_nothing(
    aof_redis: tuple[str, Any, Any], sim: Simulator, tmp_path: Path
) -> None:
    """Redis stopped and started again (AOF) mid-batch: the worker rides it out and the batch completes."""
    url, shut_down, start = aof_redis
    sim.configure(ttft_ms=20, tokens_per_s=100, answer_tokens=60)
    config = _config_file(tmp_path)
    _submit(tmp_path, url, config, "restart")
    redis = Redis.from_url(url)
    with worker_process(tmp_path, "a", config, url, sim) as worker:
        await eventually(lambda: _some_succeeded(redis, "restart"), timeout_s=30)
        shut_down()
        await eventually(lambda: _logged(tmp_path / "a.log", "redis unavailable"), timeout_s=30)
        start()
        await eventually(
            lambda: _batch_done(redis, "restart"), timeout_s=60, tolerate=(RedisConnectionError,)
        )
        assert worker.poll() is None  # still running
    await _assert_complete_and_single(redis, "restart")
    await redis.aclose()
    assert await _logged(tmp_path / "a.log", "redis reachable again")


async def test_submit_wait_rides_out_a_redis_restart(
    aof_redis: tuple[str, Any, Any], sim: Simulator, tmp_path: Path
) -> None:
    """`askq submit --wait` while Redis is down says it is reconnecting and waits, then reports the
    finished batch (it died with a traceback and exit 1, the code that means a job failed)."""
    url, shut_down, start = aof_redis
    sim.configure(ttft_ms=20, tokens_per_s=100, answer_tokens=60)
    config = _config_file(tmp_path)
    questions = tmp_path / "waited.jsonl"
    questions.write_text("".join(json.dumps({"question": f"Question {n}"}) + "\n" for n in range(QUESTIONS)))
    env = {**os.environ, "REDIS_URL": url, "ASKQ_CONFIG": str(config), "OPENAI_BASE_URL": sim.base_url}
    notices = tmp_path / "wait.err"
    redis = Redis.from_url(url)
    with worker_process(tmp_path, "a", config, url, sim), notices.open("wb") as err:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "askq.cli", "submit", str(questions), "--batch", "waited", "--wait"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        await eventually(lambda: _some_succeeded(redis, "waited"), timeout_s=30, tolerate=(NotFoundError,))
        shut_down()
        await eventually(lambda: _noticed_or_ended(notices, waiting), timeout_s=60)
        assert waiting.poll() is None, notices.read_text()  # still waiting, not dead
        start()
        out, _ = waiting.communicate(timeout=120)
    await redis.aclose()
    said = notices.read_text()
    assert waiting.returncode == 0, said
    assert "Traceback" not in said
    assert out.decode().strip() == "waited"


async def _noticed_or_ended(notices: Path, process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None or "reconnecting in" in notices.read_text()


async def _logged(path: Path, text: str) -> bool:
    return text in path.read_text()


async def _some_succeeded(redis: Redis, batch: str) -> bool:
    status = await batch_status(redis, batch, with_job_ids=False, with_latencies=False)
    return status.counts[JobState.SUCCEEDED] >= 3


async def test_a_job_that_keeps_losing_its_worker_is_failed_not_retried_forever(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """After limits.max_job_runs starts, the job is recorded failed with the reason, never asked again."""
    path = write("one.jsonl", json.dumps({"id": "x", "question": "Poison"}) + "\n")
    await submit_file(redis, path, config, batch="poison")
    # As if it had been started max_job_runs times already, each run lost with its worker.
    await redis.set(keys.arq_retry("poison:x"), config.limits.max_job_runs)
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "poison")
    assert row.status == "failed"
    assert f"started {config.limits.max_job_runs} times" in (row.error or "")
    assert sim.stats()["attempts"] == {}
    assert (await batch_status(redis, "poison")).counts[JobState.FAILED] == 1
