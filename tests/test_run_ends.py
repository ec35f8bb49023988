"""A run's end reaches readers whenever its result is stored, and what lost runs spent is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from redis.asyncio import Redis

from common import keys, record
from common.events import EventType
from common.status import JobState
from producer.batches import batch_status
from tests.conftest import Simulator
from tests.helpers import askq, eventually, logged_events, results
from tests.test_faults import REPO, _streaming_jobs, _submit_n, worker_process


def _config(tmp_path: Path, *, flush_interval_ms: int = 40) -> Path:
    path = tmp_path / "jobs.yaml"
    config = {
        "limits": {"concurrency": 4, "max_jobs": 4, "lease_s": 1},
        "retry": {"attempts": 4, "initial_wait_s": 0.05, "max_wait_s": 0.2, "jitter_s": 0.05},
        # The log is read once the jobs have ended: their events are kept.
        "stream": {"flush_interval_ms": flush_interval_ms, "keep_ended_events": True},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_a_worker_killed_right_after_storing_a_result_leaves_its_end_in_the_log(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """kill -9 the moment the record says succeeded: the done event is in the log already, and
    `askq tail --batch` prints the answer (it blamed a trimmed log when the end sat in the relay)."""
    sim.configure(ttft_ms=20, tokens_per_s=50, answer_tokens=20)
    # A slow relay: an end left to it would wait seconds, far past the kill.
    config = _config(tmp_path, flush_interval_ms=5000)
    _submit_n(tmp_path, redis_url, config, "ends", 1)
    with worker_process(tmp_path, "a", config, redis_url, sim) as worker:
        await eventually(lambda: _state_is(redis, "ends:q0", JobState.SUCCEEDED), timeout_s=30)
        worker.kill()
        worker.wait(10)
    [row] = await results(redis, "ends")
    events = await logged_events(redis, row.job_id)
    assert events, "nothing logged"
    assert events[-1].type is EventType.DONE, [event.type for event in events]
    env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": str(config)}
    shown = subprocess.run(
        [sys.executable, "-m", "askq.cli", "tail", "--batch", "ends"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert row.answer
    assert row.answer in shown.stdout
    assert "trimmed" not in shown.stderr


async def test_a_lost_run_s_attempts_and_tokens_are_counted(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A worker killed mid-stream, the job finished by another: the record's attempts equal the
    requests the provider saw, and the lost run's tokens are recorded as an estimate, apart from the
    provider's usage, in the record, the results and the batch's counters."""
    sim.configure(ttft_ms=20, tokens_per_s=40, answer_tokens=120)  # 3 s answers
    config = _config(tmp_path)
    _submit_n(tmp_path, redis_url, config, "spent", 1)
    with worker_process(tmp_path, "a", config, redis_url, sim) as first:
        await eventually(lambda: _streams(redis, "spent"), timeout_s=30)
        first.kill()
        first.wait(10)
    sim.configure(tokens_per_s=0)
    with worker_process(tmp_path, "b", config, redis_url, sim):
        await eventually(lambda: _state_is(redis, "spent:q0", JobState.SUCCEEDED), timeout_s=30)
    requests = sum(sim.stats()["attempts"].values())
    assert requests == 2
    [row] = await results(redis, "spent")
    assert row.attempts == requests
    fields = await redis.hgetall(keys.job_record("spent:q0"))
    spent = json.loads(fields[record.LOST_USAGE_EST.encode()])
    assert spent["completion_tokens"] > 0  # the lost run received text before it was killed
    assert spent["prompt_tokens"] == (row.usage or {})["prompt_tokens"]  # the same request, once more
    batch = await redis.hgetall(keys.batch_record("spent"))
    assert int(batch[record.LOST_COMPLETION_TOKENS_EST.encode()]) == spent["completion_tokens"]
    status = await batch_status(redis, "spent")
    assert status.completion_tokens == (row.usage or {})["completion_tokens"]  # provider-reported only
    shown = json.loads(askq("status", "spent", "--json", env={"REDIS_URL": redis_url}).stdout)
    assert shown["tokens"]["lost_runs_estimate"] == {
        "prompt": spent["prompt_tokens"],
        "completion": spent["completion_tokens"],
    }
    table = askq("status", "spent", env={"REDIS_URL": redis_url, "COLUMNS": "200"}).stdout
    assert f"{spent['prompt_tokens'] + spent['completion_tokens']} (estimate)" in table


async def _state_is(redis: Redis, job_id: str, state: JobState) -> bool:
    return await redis.hget(keys.job_record(job_id), record.STATE) == state.value.encode()  # type: ignore[misc]  # redis-py types sync and async alike


async def _streams(redis: Redis, batch: str) -> bool:
    return len(await _streaming_jobs(redis, batch, 4)) == 1
