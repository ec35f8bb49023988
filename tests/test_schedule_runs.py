"""Scheduled summary runs, end to end: a source read, map-reduce through the simulator, the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common import keys, runs
from common.config import AskqConfig, parse_config
from common.events import EventType
from common.status import JobState
from producer.schedules import request_run, run_history
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import logged_events, run_burst_schedule_worker, run_burst_worker
from worker.schedules.mapreduce import MAP, REDUCE, SINGLE

ANSWERS = 300


def schedule_config(output: Path, **schedule: Any) -> AskqConfig:
    """A schedule writing into ``output``, whose parent folder is the root its paths stay inside."""
    body = {
        "cron": "0 2 * * *",
        "timezone": "Asia/Seoul",
        "source": {"kind": "answers"},
        "prompt": "Summarize what was asked and answered.",
        "output": output.name,
        **schedule,
    }
    return parse_config(
        {
            "retry": {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01},
            "schedules": {"nightly": body},
            "files_root": str(output.parent),
        }
    )


async def answered(redis: Redis, redis_url: str, config: AskqConfig, write: Any, count: int) -> list[str]:
    questions = [f"question number {index:04d} about topic q{index:04d}x" for index in range(count)]
    path = write("questions.txt", "\n".join(questions) + "\n")
    await submit_file(redis, path, config, batch="daytime")
    await run_burst_worker(config, redis_url)
    return questions


async def run_now(redis: Redis, redis_url: str, config: AskqConfig, name: str = "nightly") -> dict[str, str]:
    run_id = await request_run(redis, config, name)
    await run_burst_schedule_worker(config, redis_url)
    raw = await redis.hgetall(keys.job_record(run_id))
    return {"run_id": run_id, **{field.decode(): value.decode() for field, value in raw.items()}}


def is_map(request: dict[str, str]) -> bool:
    return request["user"].startswith(MAP.split("{", 1)[0])


def is_reduce(request: dict[str, str]) -> bool:
    return request["user"].startswith(REDUCE.split("{", 1)[0])


async def test_a_large_window_is_mapped_in_chunks_then_reduced_into_the_file(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """Every answer reaches a map call, every map output reaches a reduce, and the file holds the summary."""
    config = schedule_config(tmp_path / "out", context_tokens=1000)
    questions = await answered(redis, redis_url, config, write, ANSWERS)
    sim.configure(record_requests=True)

    run = await run_now(redis, redis_url, config)

    assert run["state"] == JobState.SUCCEEDED.value, run.get("error")
    requests = sim.requests()
    maps = [request for request in requests if is_map(request)]
    reduces = [request for request in requests if is_reduce(request)]
    assert len(maps) > 10
    for question in questions:
        assert sum(question in request["user"] for request in maps) == 1, question
    reduced_input = "".join(request["user"] for request in reduces)
    for request in maps:
        assert request["answer"] in reduced_input
    final = requests[-1]
    assert is_reduce(final)
    output = Path(run[runs.OUTPUT])
    assert output.parent == tmp_path / "out" / "nightly"
    text = output.read_text(encoding="utf-8")
    assert text.endswith(final["answer"] + "\n")
    assert f"input: {ANSWERS} answers" in text
    assert f"{len(maps)} chunks, {len(requests)} model calls" in text
    assert "estimated cost $" in text
    assert text == run["answer"]


async def test_every_call_of_a_run_streams_into_the_run_log_by_part(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """The run's log has one start, each map and reduce call's text under its part, and one done."""
    config = schedule_config(tmp_path / "out", context_tokens=1000)
    await answered(redis, redis_url, config, write, 120)
    sim.configure(record_requests=True)

    run = await run_now(redis, redis_url, config)

    events = await logged_events(redis, run["run_id"])
    parts = {event.part for event in events if event.type is EventType.DELTA}
    maps = [request for request in sim.requests() if is_map(request)]
    assert {f"map {index}/{len(maps)}" for index in range(1, len(maps) + 1)} <= parts
    assert "summary" in parts
    assert [event.type for event in events if event.part is None] == [EventType.START, EventType.DONE]
    summary = "".join(event.text or "" for event in events if event.part == "summary")
    assert run["answer"].endswith(summary + "\n")


async def test_a_small_window_is_one_call_and_the_next_run_reads_only_what_came_after(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """Input that fits is summarized by one call; the next run's window starts where this one ended."""
    config = schedule_config(tmp_path / "out")
    await answered(redis, redis_url, config, write, 5)
    sim.configure(record_requests=True)

    first = await run_now(redis, redis_url, config)
    second = await run_now(redis, redis_url, config)

    requests = sim.requests()
    assert len(requests) == 1
    assert requests[0]["user"].startswith(SINGLE)
    assert "input: 5 answers" in first["answer"]
    assert "input: 0 answers" in second["answer"]
    assert "Nothing to summarize" in Path(second[runs.OUTPUT]).read_text(encoding="utf-8")
    assert first[runs.OUTPUT] != second[runs.OUTPUT]  # a second run of the day gets a file of its own
    history = await run_history(redis, config, "nightly", 10)
    assert [entry["run_id"] for entry in history] == [second["run_id"], first["run_id"]]


async def test_answers_are_filtered_by_batch_and_failed_jobs_left_out(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """A batch filter keeps other batches out; failed jobs are counted, not summarized."""
    config = schedule_config(tmp_path / "out", source={"kind": "answers", "batch": "wanted"})
    lines = ["ok one", "ok two", "broken [[sim: 400]]"]
    await submit_file(redis, write("wanted.txt", "\n".join(lines) + "\n"), config, batch="wanted")
    await submit_file(redis, write("other.txt", "unrelated question\n"), config, batch="other")
    await run_burst_worker(config, redis_url)
    sim.configure(record_requests=True)

    run = await run_now(redis, redis_url, config)

    assert "input: 2 answers, 1 failed or cancelled, left out, 1 other batches or job types" in run["answer"]
    (request,) = sim.requests()
    assert "ok one" in request["user"]
    assert "ok two" in request["user"]
    assert "unrelated" not in request["user"]
    assert "broken" not in request["user"]


async def test_files_source_reads_only_files_changed_since_the_last_run(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """The second run reads the edited and the new file, not the unchanged ones."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md", "c.txt"):
        (docs / name).write_text(f"first version of {name}\n", encoding="utf-8")
    config = schedule_config(tmp_path / "out", source={"kind": "files", "glob": "docs/*"})
    sim.configure(record_requests=True)

    first = await run_now(redis, redis_url, config)
    (docs / "b.md").write_text("second version of b.md\n", encoding="utf-8")
    (docs / "d.md").write_text("brand new d.md\n", encoding="utf-8")
    second = await run_now(redis, redis_url, config)

    first_request, second_request = (request["user"] for request in sim.requests())
    assert all(f"first version of {name}" in first_request for name in ("a.md", "b.md", "c.txt"))
    assert "second version of b.md" in second_request
    assert "brand new d.md" in second_request
    assert "first version" not in second_request
    assert "input: 3 files changed" in first["answer"]
    assert "input: 2 files changed, 2 unchanged" in second["answer"]


async def test_a_failed_run_leaves_its_files_to_the_next_run(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A run refused by the provider marks nothing as read: the next run reads the same files."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("some notes\n", encoding="utf-8")
    config = schedule_config(tmp_path / "out", source={"kind": "files", "glob": "docs/*.md"})
    sim.configure(require_api_key="right-key")

    failed = await run_now(redis, redis_url, config)
    sim.configure(require_api_key=None)
    succeeded = await run_now(redis, redis_url, config)

    assert failed["state"] == JobState.FAILED.value
    assert "401" in failed["error"]
    assert "input: 1 files changed" in succeeded["answer"]
    history = await run_history(redis, config, "nightly", 10)
    assert [entry["state"] for entry in history] == ["succeeded", "failed"]


async def test_the_map_step_can_go_through_the_batch_api(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """With batch_api, the map calls are one uploaded batch, polled; the reduce still streams."""
    config = schedule_config(tmp_path / "out", context_tokens=1000, batch_api=True)
    questions = await answered(redis, redis_url, config, write, 120)
    sim.configure(record_requests=True, batch_delay_ms=300)
    calls_before = sim.stats()["requests_total"]

    run = await run_now(redis, redis_url, config)

    assert run["state"] == JobState.SUCCEEDED.value, run.get("error")
    stats = sim.stats()
    maps = [request for request in sim.requests() if is_map(request)]
    assert stats["batches_created"] == 1
    assert stats["batch_requests"] == len(maps) > 1
    assert all(any(question in request["user"] for request in maps) for question in questions)
    streamed = stats["requests_total"] - calls_before
    assert streamed == len(sim.requests()) - len(maps)  # only the reduce calls were streamed
    assert "map step through the Batch API" in run["answer"]
    events = await logged_events(redis, run["run_id"])
    assert {f"map {index}/{len(maps)}" for index in range(1, len(maps) + 1)} <= {
        event.part for event in events
    }


async def test_history_lists_runs_newest_first_as_json(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Each history entry names its run, trigger, state and file."""
    config = schedule_config(tmp_path / "out")
    run = await run_now(redis, redis_url, config)

    (entry,) = await run_history(redis, config, "nightly", 5)

    assert entry["run_id"] == run["run_id"]
    assert (entry["trigger"], entry["state"]) == ("manual", "succeeded")
    assert entry["output"] == run[runs.OUTPUT]
    assert json.loads(json.dumps(entry)) == entry


async def test_a_chunk_the_batch_could_not_answer_is_asked_again_streamed(
    redis: Redis, redis_url: str, sim: Simulator, write: Any, tmp_path: Path
) -> None:
    """A batch line that failed costs one streamed call (retried as any other), not the run."""
    config = schedule_config(tmp_path / "out", context_tokens=1000, batch_api=True)
    questions = [f"question {index} about topic {index}" for index in range(60)]
    questions[7] = "question 7 that the batch fails [sim:500]"
    await submit_file(redis, write("q.txt", "\n".join(questions) + "\n"), config, batch="day")
    await run_burst_worker(config, redis_url)
    sim.reset()
    sim.configure(record_requests=True)

    run = await run_now(redis, redis_url, config)

    assert run["state"] == JobState.SUCCEEDED.value, run.get("error")
    stats = sim.stats()
    failing = [request for request in sim.requests() if "[sim:500]" in request["user"]]
    assert len(failing) == 1  # the line the batch answered 500 is not recorded; the streamed retry is
    assert stats["responses_by_status"]["500"] == 1  # its first streamed attempt, then a retry
    key = failing[0]["user"]
    assert stats["attempts"][key] == 2
