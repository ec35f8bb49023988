"""Fitting the load to the server: fewer slots than askq's concurrency, streams cut for a waiting
request. Healthy jobs neither fail nor spend attempts; the calls in flight come down, for every worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis
from structlog.testing import capture_logs

from common.config import AskqConfig, parse_config
from common.provider_state import ProviderState, provider_states
from producer.batches import batch_status
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, eventually, results, run_burst_worker
from tests.test_faults import worker_process
from worker.answering.in_flight import CUT_REASON, InFlight

JOBS = 40


async def _submit(redis: Redis, config: AskqConfig, write: Any, batch: str, count: int = JOBS) -> None:
    lines = "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(count))
    await submit_file(redis, write("q.jsonl", lines), config, batch=batch)


async def _state(redis: Redis) -> ProviderState:
    [state] = await provider_states(redis)
    return state


async def _all_answered_once(redis: Redis, batch: str, count: int = JOBS) -> None:
    rows = await results(redis, batch)
    assert [(row.status, row.attempts) for row in rows] == [("succeeded", 1)] * count, [
        (row.item_id, row.status, row.attempts, row.error) for row in rows if row.attempts != 1
    ]


async def test_a_server_with_4_slots_gets_4_calls_in_flight_and_no_job_fails(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """40 jobs at concurrency 32 on a 4-slot server: all succeed at the first attempt, the shared limit
    is fitted to 4 (said once, shown by status)."""
    sim.configure(slots=4, tokens_per_s=20, answer_tokens=24)  # 1.2 s answers: queued ones wait long
    await _submit(redis, config, write, "slots")
    with capture_logs() as logs:
        await run_burst_worker(config, redis_url)
    await _all_answered_once(redis, "slots")
    state = await _state(redis)
    assert state.in_flight_limit == 4
    fitted = [log["event"] for log in logs if "askq now keeps" in log["event"]]
    assert fitted == ["the provider answers 4 calls at once; askq now keeps 4 in flight (was no limit)"]
    shown = askq("status", "slots", env={"COLUMNS": "400"}).stdout
    assert "askq keeps 4 calls in flight" in shown
    assert "the provider answers 4 calls at once" in shown


async def test_a_server_that_cuts_streams_for_a_waiting_request_gets_one_call_at_a_time(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """llama-cpp-python's --interrupt_requests: at concurrency 4 every job succeeds, the first cut aside
    (once could be any cut) no attempt is spent on one, the limit becomes 1, and the warning naming the
    setting is logged once."""
    config = parse_config(
        {
            "limits": {"concurrency": 4},
            "retry": {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
        }
    )
    sim.configure(slots=1, interrupt_on_wait=True, tokens_per_s=100, answer_tokens=10)
    await _submit(redis, config, write, "cuts", count=12)
    with capture_logs() as logs:
        await run_burst_worker(config, redis_url)
    rows = await results(redis, "cuts")
    assert [row.status for row in rows] == ["succeeded"] * 12
    assert sum(row.attempts for row in rows) <= 12 + 1
    assert sim.stats()["streams_interrupted"] >= 1  # it did cut
    assert (await _state(redis)).in_flight_limit == 1
    assert [log for log in logs if log["event"] == CUT_REASON] != []
    assert len([log for log in logs if log["event"] == CUT_REASON]) == 1


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    config = {
        # Each holds at most half the batch at once: both have calls in flight together.
        "limits": {"concurrency": 32, "max_jobs": JOBS // 2, "lease_s": 2},
        "retry": {"attempts": 4, "initial_wait_s": 0.05, "max_wait_s": 0.2, "jitter_s": 0.05},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_two_worker_processes_share_the_limit(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any, tmp_path: Path
) -> None:
    """Two worker processes against a 4-slot server: every job succeeds at its first attempt, and the
    limit they keep together is at most the server's 4 slots."""
    sim.configure(slots=4, tokens_per_s=20, answer_tokens=24)
    await _submit(redis, config, write, "two")
    path = _config_file(tmp_path)

    async def done() -> bool:
        return (await batch_status(redis, "two", with_job_ids=False, with_latencies=False)).done

    with (
        worker_process(tmp_path, "w1", path, redis_url, sim),
        worker_process(tmp_path, "w2", path, redis_url, sim),
    ):
        await eventually(done, timeout_s=90)
    await _all_answered_once(redis, "two")
    limit = (await _state(redis)).in_flight_limit
    assert limit is not None
    assert 1 <= limit <= 4
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("w1", "w2")]
    assert all("job finished" in log for log in logs)  # both answered


async def test_waiting_at_a_busy_server_does_not_count_against_the_job_timeout(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """Jobs queued at a one-slot server (no first byte, then no place) for longer than job_timeout_s all
    succeed: the timeout bounds a job's own answer, not the server's queue in front of it."""
    sim.configure(slots=1, tokens_per_s=20, answer_tokens=8)  # 0.4 s answers, one at a time
    config = parse_config(
        {"limits": {"job_timeout_s": 1.0}, "retry": {"attempts": 2, "initial_wait_s": 0.01, "jitter_s": 0}}
    )
    await _submit(redis, config, write, "patient", count=8)  # the last waits about 3 s
    await run_burst_worker(config, redis_url)
    await _all_answered_once(redis, "patient", count=8)


def test_a_call_waiting_for_its_send_time_is_not_waiting_for_the_server() -> None:
    """A paced call asleep until its send time is no call the server keeps waiting: were it counted,
    a pace that books calls seconds ahead would look like queueing and lower the calls in flight."""
    in_flight = InFlight()
    asleep = in_flight.begin(None, None, 0, send_in_s=60)
    in_flight.begin(None, None, 0)
    other = in_flight.begin(None, None, 0)
    assert in_flight.waiting(other) == 1
    assert asleep.sent > other.sent + 59
