"""`/api/batches/{batch}/events?skip_ended=true`: a batch stream from the running jobs on, with no
listing of the jobs that ended before it (what the console's follow view opens)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from common.status import JobState
from producer.batches import batch_status
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import eventually, results, run_burst_worker
from tests.test_api_events import Sse, read_events

PATH = "/api/batches/fol/events?follow=true"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


async def _submit(redis: Redis, config: AskqConfig, write: Any, ids: list[str]) -> None:
    lines = "".join(json.dumps({"id": item, "question": f"Tell me about {item}"}) + "\n" for item in ids)
    await submit_file(redis, write(f"{ids[0]}.jsonl", lines), config, batch="fol")


async def test_ended_jobs_are_left_out_and_running_ones_stream_whole(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Three jobs ended before: none of them comes; a job run after the stream opened comes whole."""
    await _submit(redis, config, write, ["a", "b", "c"])
    await run_burst_worker(config, redis_url)
    listed = await read_events(server, PATH, until=lambda got: sum(e.event == "result" for e in got) == 3)
    ended = sorted(event.json()["job_id"] for event in listed if event.event == "result")
    assert ended == ["fol:a", "fol:b", "fol:c"]  # without skip_ended: listed from their stored results

    opened = asyncio.Event()

    def until(got: list[Sse]) -> bool:
        opened.set()  # the first event (the progress) came: the stream reads the log from here on
        return got[-1].event == "done"

    reading = asyncio.create_task(read_events(server, PATH + "&skip_ended=true", until=until))
    await asyncio.wait_for(opened.wait(), 30)
    sim.configure(ttft_ms=20, tokens_per_s=400, answer_tokens=40)
    await _submit(redis, config, write, ["later"])
    await run_burst_worker(config, redis_url)
    events = await asyncio.wait_for(reading, 30)
    assert "result" not in [event.event for event in events]
    stream = [event.json() for event in events if event.event not in {"progress", "result"}]
    assert {event["job_id"] for event in stream} == {"fol:later"}
    assert (stream[0]["type"], stream[-1]["type"]) == ("start", "done")
    answer = {row.job_id: row.answer for row in await results(redis, "fol")}["fol:later"]
    assert "".join(event.get("text", "") for event in stream) == answer


async def test_a_job_running_when_the_stream_opens_comes_from_its_start(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A slow job started before the stream, quick ones ended after its start: the slow one's every event
    comes, from its `start`; the quick ones' events, in the log after it, do not."""
    lines = [{"id": "slow", "question": "[sim:slow=3000] Take your time"}]
    lines += [{"id": f"quick{i}", "question": f"Quick {i}?"} for i in range(3)]
    await submit_file(
        redis, write("mixed.jsonl", "".join(json.dumps(line) + "\n" for line in lines)), config, batch="fol"
    )
    worker = asyncio.create_task(run_burst_worker(config, redis_url))

    async def only_the_slow_one_runs() -> bool:
        counts = (await batch_status(redis, "fol", with_job_ids=False, with_latencies=False)).counts
        return (counts[JobState.SUCCEEDED], counts[JobState.RUNNING]) == (3, 1)

    await eventually(only_the_slow_one_runs)
    events = await read_events(server, PATH + "&skip_ended=true", until=lambda got: got[-1].event == "done")
    await worker
    stream = [event.json() for event in events if event.event not in {"progress", "result"}]
    assert {event["job_id"] for event in stream} == {"fol:slow"}
    assert [event["seq"] for event in stream] == list(range(1, len(stream) + 1))
    answer = {row.job_id: row.answer for row in await results(redis, "fol")}["fol:slow"]
    assert "".join(event.get("text", "") for event in stream) == answer
