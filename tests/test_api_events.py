"""Live events over SSE against a real `askq serve`, a real worker and the simulator, read as plain HTTP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from producer.retry import retry_batch
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import eventually, keeping_events, results, run_burst_worker

SLOW = {"ttft_ms": 20, "tokens_per_s": 200, "answer_tokens": 200}
"""An answer that streams for about a second: clients can join and leave while it runs."""


@dataclass(frozen=True)
class Sse:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


async def sse_stream(response: httpx2.Response) -> AsyncIterator[Sse | str]:
    """The events of a text/event-stream body, parsed by hand; a comment line comes as its text."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield line
        elif line == "":
            if "data" in fields:  # as EventSource does: a block without data (``retry:``) is no event
                yield Sse(fields.get("event", "message"), fields.get("data", ""), fields.get("id"))
            fields = {}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def read_events(
    server: ApiServer,
    path: str,
    *,
    last_event_id: str | None = None,
    until: Callable[[list[Sse]], bool] | None = None,
) -> list[Sse]:
    """The stream's events to its end, or until ``until`` holds (then the client hangs up)."""
    headers = {**server.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    events: list[Sse] = []
    async with (
        httpx2.AsyncClient(timeout=30) as client,
        client.stream("GET", server.url + path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for item in sse_stream(response):
            if isinstance(item, Sse):
                events.append(item)
                if until is not None and until(events):
                    break
    return events


async def _submit(redis: Redis, config: AskqConfig, write: Any, count: int, batch: str = "ev") -> list[str]:
    lines = [json.dumps({"id": f"q{n}", "question": f"Tell me story {n}"}) for n in range(count)]
    await submit_file(redis, write("questions.jsonl", "\n".join(lines) + "\n"), config, batch=batch)
    return [f"{batch}:q{n}" for n in range(count)]


def _stream_events(events: list[Sse]) -> list[dict[str, Any]]:
    """The StreamEvents among the SSE events (not end, result, progress, gap)."""
    return [event.json() for event in events if event.event not in {"end", "result", "progress", "gap"}]


def _deltas(stream: list[dict[str, Any]]) -> str:
    return "".join(event.get("text", "") for event in stream if event["type"] == "delta")


def _delta_count(events: list[Sse]) -> int:
    return sum(event.event == "delta" for event in events)


async def test_a_client_joining_after_the_end_gets_every_event(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """After the end (events kept), the stream replays every event, each typed and with an id, then ends."""
    config = keeping_events(config)
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    events = await read_events(server, f"/api/jobs/{job_id}/events")
    [row] = await results(redis, "ev")
    stream = _stream_events(events)
    assert [event["seq"] for event in stream] == list(range(1, len(stream) + 1))
    assert [event.event for event in events[:-1]] == [event["type"] for event in stream]
    assert (stream[0]["type"], stream[-1]["type"]) == ("start", "done")
    assert _deltas(stream) == row.answer
    assert (events[-1].event, events[-1].id, events[-1].json()["state"]) == ("end", "end", "succeeded")
    assert len({event.id for event in events[:-1]}) == len(events) - 1


async def test_a_late_client_of_a_trimmed_job_gets_its_stored_result(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """An ended job's events left the log (the default): the stream is its stored result, then the end."""
    sim.configure(**SLOW)  # many flushes: all but the last leave the log at the end
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    events = await read_events(server, f"/api/jobs/{job_id}/events")
    [row] = await results(redis, "ev")
    assert [event.event for event in events] == ["result", "end"], events
    result = events[0].json()
    assert (result["job_id"], result["state"], result["answer"]) == (job_id, "succeeded", row.answer)
    assert events[-1].event == "end"


async def test_a_client_that_hangs_up_mid_answer_resumes_with_last_event_id(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Hang up after a few deltas, come back with Last-Event-ID: the deltas make the answer, no seq twice."""
    config = keeping_events(config)
    sim.configure(**SLOW)
    [job_id] = await _submit(redis, config, write, 1)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    first = await read_events(server, f"/api/jobs/{job_id}/events", until=lambda got: _delta_count(got) >= 5)
    rest = await read_events(server, f"/api/jobs/{job_id}/events", last_event_id=first[-1].id)
    await worker
    [row] = await results(redis, "ev")
    stream = _stream_events(first + rest)
    assert [event["seq"] for event in stream] == list(range(1, len(stream) + 1))
    assert _deltas(stream) == row.answer
    assert rest[-1].event == "end"


@pytest.mark.parametrize("resume_after_the_end", [False, True])
async def test_a_client_resuming_a_job_whose_events_leave_the_log_loses_and_repeats_nothing(
    server: ApiServer,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
    resume_after_the_end: bool,
) -> None:
    """Default config (an ended job's events leave the log): a resumed client ends with the answer, once."""
    sim.configure(**SLOW)
    [job_id] = await _submit(redis, config, write, 1)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    first = await read_events(server, f"/api/jobs/{job_id}/events", until=lambda got: _delta_count(got) >= 5)
    if resume_after_the_end:
        await worker  # the job ended: its events left the log before the client comes back
    rest = await read_events(server, f"/api/jobs/{job_id}/events", last_event_id=first[-1].id)
    await worker
    [row] = await results(redis, "ev")
    stream = _stream_events(first + rest)
    assert [event["seq"] for event in stream] == list(range(1, len(stream) + 1))
    ends = [event.json() for event in rest if event.event == "result"]
    if ends:  # the stored end stands for what the log no longer holds: the whole answer
        assert [end["answer"] for end in ends] == [row.answer]
    else:
        assert _deltas(stream) == row.answer
    assert rest[-1].event == "end"


async def test_a_client_reconnecting_after_the_end_is_told_to_stop(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Last-Event-ID 'end' (a browser reconnects after every close): 204, which stops an EventSource."""
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    async with httpx2.AsyncClient(timeout=30) as client:
        for path in (f"/api/jobs/{job_id}/events", "/api/batches/ev/events"):
            headers = {**server.headers, "Last-Event-ID": "end"}
            response = await client.get(server.url + path, headers=headers)
            assert response.status_code == 204


async def test_the_stream_is_marked_unbuffered_and_uncached(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no (proxies pass events at once)."""
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    async with (
        httpx2.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{server.url}/api/jobs/{job_id}/events", headers=server.headers) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"


async def test_the_stream_first_tells_a_browser_to_reconnect_after_a_second(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """The first block is ``retry: 1000`` alone (no data: EventSource dispatches nothing), then events."""
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    lines: list[str] = []
    async with (
        httpx2.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{server.url}/api/jobs/{job_id}/events", headers=server.headers) as response,
    ):
        async for line in response.aiter_lines():
            lines.append(line)
            if lines.count("") == 2:  # two blocks
                break
    assert lines[:2] == ["retry: 1000", ""]
    assert lines[2].startswith("id: ")


async def test_the_batch_stream_ends_when_the_batch_is_done(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Every job's end comes (from the log or its stored result), the last progress is done, then the end."""
    job_ids = await _submit(redis, config, write, 3)
    reading = asyncio.create_task(read_events(server, "/api/batches/ev/events"))
    await run_burst_worker(config, redis_url)
    events = await reading
    answers = {row.job_id: row.answer for row in await results(redis, "ev")}
    ended = {event.json()["job_id"]: event.json()["answer"] for event in events if event.event == "result"}
    assert ended == answers
    assert sorted(ended) == job_ids
    progress = [event.json() for event in events if event.event == "progress"]
    assert progress[-1]["done"]
    assert progress[-1]["total"] == 3
    assert events[-1].event == "end"


async def test_the_batch_stream_with_follow_goes_on_after_the_batch_is_done(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """?follow=true: the failed job's end, then (after `askq retry`) its new run, on the same connection."""
    sim.configure(rate_500=1.0)
    [job_id] = await _submit(redis, config, write, 1)
    await run_burst_worker(config, redis_url)
    failed = asyncio.Event()

    def until(got: list[Sse]) -> bool:
        if any(event.event == "result" and event.json()["state"] == "failed" for event in got):
            failed.set()
        return bool(got) and got[-1].event == "done"

    reading = asyncio.create_task(read_events(server, "/api/batches/ev/events?follow=true", until=until))
    await asyncio.wait_for(failed.wait(), 30)
    sim.configure(rate_500=0)
    assert await retry_batch(redis, "ev", config) == 1
    await run_burst_worker(config, redis_url)
    events = await reading
    [row] = await results(redis, "ev")
    after_failure = _stream_events(events[[event.event for event in events].index("result") :])
    assert after_failure[-1]["type"] == "done"
    assert after_failure[-1]["job_id"] == job_id
    assert _deltas([event for event in after_failure if event["type"] != "retry"]) == row.answer
    assert "end" not in [event.event for event in events]


async def test_clients_of_one_batch_share_one_subscription(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Two clients following a batch live: one pub/sub subscriber on its channel, none once both left."""
    sim.configure(**SLOW)
    await _submit(redis, config, write, 1)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    receiving = [asyncio.Event(), asyncio.Event()]

    async def client(received: asyncio.Event) -> None:
        def until(got: list[Sse]) -> bool:
            if _delta_count(got) >= 1:
                received.set()
            return False

        await read_events(server, "/api/batches/ev/events?follow=true", until=until)

    clients = [asyncio.create_task(client(received)) for received in receiving]
    for received in receiving:
        await asyncio.wait_for(received.wait(), 30)
    channel = keys.batch_events_channel("ev")
    assert await redis.pubsub_numsub(channel) == [(channel.encode(), 1)]
    for task in clients:
        task.cancel()  # both hang up
    await asyncio.gather(*clients, return_exceptions=True)
    await worker
    await eventually(lambda: _subscribers_gone(redis, channel))


async def _subscribers_gone(redis: Redis, channel: str) -> bool:
    return await redis.pubsub_numsub(channel) == [(channel.encode(), 0)]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/api/jobs/nobatch:1/events", "unknown batch 'nobatch'"),
        ("/api/jobs/ev:nope/events", "no item 'nope'"),
        ("/api/batches/nobatch/events", "nobatch"),
    ],
)
async def test_an_unknown_job_or_batch_is_a_json_404_before_any_stream(
    server: ApiServer, redis: Redis, config: AskqConfig, write: Any, path: str, named: str
) -> None:
    """Not an event stream that ends at once: a 404 in the API's error shape, naming what is unknown."""
    await _submit(redis, config, write, 1)
    async with httpx2.AsyncClient(timeout=30) as client:
        response = await client.get(server.url + path, headers=server.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert named in response.json()["error"]["message"]


async def test_a_batch_client_that_hangs_up_resumes_with_last_event_id(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Hang up mid-batch, come back with the last id: no seq twice, each text whole, one end a job."""
    config = keeping_events(config)
    sim.configure(**SLOW)
    job_ids = await _submit(redis, config, write, 2)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    first = await read_events(server, "/api/batches/ev/events", until=lambda got: _delta_count(got) >= 5)
    last_id = [event.id for event in first if event.id is not None][-1]
    rest = await read_events(server, "/api/batches/ev/events", last_event_id=last_id)
    await worker
    answers = {row.job_id: row.answer for row in await results(redis, "ev")}
    stream = _stream_events(first + rest)
    for job_id in job_ids:
        own = [event for event in stream if event["job_id"] == job_id]
        assert [event["seq"] for event in own] == list(range(1, len(own) + 1))
        assert _deltas(own) == answers[job_id]
    ended = [event.json()["job_id"] for event in first + rest if event.event == "result"]
    assert sorted(ended) == job_ids
    assert rest[-1].event == "end"


async def test_a_last_event_id_not_of_this_stream_is_a_400_naming_it(
    server: ApiServer, redis: Redis, config: AskqConfig, write: Any
) -> None:
    """A Last-Event-ID that is no place in the stream: 400 saying what an id looks like, no stream."""
    [job_id] = await _submit(redis, config, write, 1)
    async with httpx2.AsyncClient(timeout=30) as client:
        headers = {**server.headers, "Last-Event-ID": "yesterday"}
        response = await client.get(f"{server.url}/api/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_last_event_id", "Last-Event-ID")
    assert "'yesterday'" in error["message"]


def _two_deltas_after_a_result(got: list[Sse]) -> bool:
    kinds = [event.event for event in got]
    return "result" in kinds and kinds[kinds.index("result") :].count("delta") >= 2


async def test_a_batch_client_resuming_after_a_result_gets_each_result_once(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Hang up after a job's result and a later job's deltas, resume: every job's result came once."""
    sim.configure(ttft_ms=20, tokens_per_s=400, answer_tokens=40)
    job_ids = await _submit(redis, config, write, 4)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    first = await read_events(server, "/api/batches/ev/events", until=_two_deltas_after_a_result)
    last_id = [event.id for event in first if event.id is not None][-1]
    rest = await read_events(server, "/api/batches/ev/events", last_event_id=last_id)
    await worker
    ended = Counter(event.json()["job_id"] for event in first + rest if event.event == "result")
    assert ended == dict.fromkeys(job_ids, 1)


async def test_a_job_whose_item_id_holds_a_slash_is_reachable(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Item ids may hold '/': sent as %2F, the job's document and its stream are found (paths are decoded)."""
    line = json.dumps({"id": "a/b", "question": "Slashes?"})
    await submit_file(redis, write("slash.jsonl", line + "\n"), config, batch="ev")
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "ev")
    async with httpx2.AsyncClient(timeout=30) as client:
        document = await client.get(f"{server.url}/api/jobs/ev:a%2Fb", headers=server.headers)
    assert (document.status_code, document.json()["id"]) == (200, "a/b")
    events = await read_events(server, "/api/jobs/ev:a%2Fb/events")
    ended = [event.json()["answer"] for event in events if event.event == "result"]
    assert (ended[-1] if ended else _deltas(_stream_events(events))) == row.answer
    assert events[-1].event == "end"
