"""The live routes' SSE response: frames out as given, keep-alive comments, its end however it comes.

Driven as ASGI, its sends and its client's disconnect in queues of this process; how a real server
stops it is at the end, against ``askq serve``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import httpx2
from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from server.events.sse import EventStreamResponse, comment, frame
from tests.api_server import api_server


class Client:
    """The ASGI side of one response: what it sent, and a disconnect to hand it."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.closed = 0

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await self.sent.put(message)

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def on_close(self) -> None:
        self.closed += 1

    async def body(self) -> bytes:
        """The next body's bytes (``<end>`` for the body's end); fails if none comes within 10 s."""
        message = await asyncio.wait_for(self.sent.get(), 10)
        assert message["type"] == "http.response.body"
        return bytes(message["body"]) if message["more_body"] else b"<end>"


def _response(
    client: Client, frames: AsyncGenerator[bytes, None], stopping: asyncio.Event
) -> asyncio.Task[None]:
    response = EventStreamResponse(
        frames,
        headers={"Cache-Control": "no-cache"},
        keepalive_s=0.05,
        stopping=stopping,
        on_close=client.on_close,
    )
    scope = {"type": "http", "method": "GET", "path": "/events", "headers": []}
    return asyncio.create_task(response(scope, client.receive, client.send))


async def _then_silence(frames: list[bytes], left: list[bool]) -> AsyncGenerator[bytes, None]:
    """``frames``, then nothing for good; ``left`` gets True once it was closed."""
    try:
        for data in frames:
            yield data
        await asyncio.Event().wait()
    finally:
        left.append(True)


async def test_frames_go_out_as_given_then_the_body_ends() -> None:
    """Each frame in its own send, after a 200 of text/event-stream with the route's headers."""
    client = Client()

    async def two() -> AsyncGenerator[bytes, None]:
        yield frame("delta", '{"text": "a"}', "1-0/1")
        yield frame("end", "{}", "end")

    await _response(client, two(), asyncio.Event())
    start = await client.sent.get()
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert dict(start["headers"])[b"cache-control"] == b"no-cache"
    assert await client.body() == b'id: 1-0/1\r\nevent: delta\r\ndata: {"text": "a"}\r\n\r\n'
    assert await client.body() == b"id: end\r\nevent: end\r\ndata: {}\r\n\r\n"
    assert await client.body() == b"<end>"
    assert client.closed == 1


async def test_a_quiet_stream_gets_keepalive_comments_and_ends_when_the_server_stops() -> None:
    """Nothing to send: comment lines come; the server stopping ends the body and closes the stream."""
    client, stopping, left = Client(), asyncio.Event(), list[bool]()
    task = _response(client, _then_silence([], left), stopping)
    await client.sent.get()  # the start
    assert (await client.body()).startswith(b": ping - ")
    assert (await client.body()).startswith(b": ping - ")
    stopping.set()
    await task
    bodies = [message["body"] for message in _drain(client.sent)]
    assert bodies[-1] == b""
    assert all(body.startswith(b": ping") for body in bodies[:-1])
    assert left == [True]
    assert client.closed == 1


async def test_a_client_hanging_up_closes_the_stream_and_its_frames() -> None:
    """The disconnect ends the response at once: the frames' generator is closed, on_close runs."""
    client, left = Client(), list[bool]()
    task = _response(client, _then_silence([frame("delta", "{}")], left), asyncio.Event())
    await client.sent.get()  # the start
    assert await client.body() == b"event: delta\r\ndata: {}\r\n\r\n"
    client.gone.set()
    await task
    assert left == [True]
    assert client.closed == 1


def test_a_comment_has_one_line_per_line_of_its_text() -> None:
    """A notice of two lines is two comment lines: no line of it can pass for a field."""
    assert comment("one\ndata: two") == b": one\r\n: data: two\r\n\r\n"


def _drain(queue: asyncio.Queue[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    messages = []
    while not queue.empty():
        messages.append(queue.get_nowait())
    return messages


async def test_stopping_the_server_ends_open_streams_cleanly(
    redis: Redis, redis_url: str, config: AskqConfig, write: Any
) -> None:
    """SIGTERM to askq serve with a client on a queued job: the body ends as HTTP says, not cut off."""
    path = write("questions.jsonl", json.dumps({"id": "q0", "question": "Wait for me"}) + "\n")
    await submit_file(redis, path, config, batch="stop")
    with api_server(redis_url) as server:
        async with (
            httpx2.AsyncClient(timeout=30) as http,
            http.stream("GET", f"{server.url}/api/jobs/stop:q0/events") as response,
        ):
            lines = response.aiter_lines()
            assert [await anext(lines), await anext(lines)] == ["retry: 1000", ""]  # the reconnect delay
            assert (await anext(lines)).startswith(": queued")
            os.kill(server.pid, signal.SIGTERM)
            rest = [line async for line in lines]  # a body cut off would raise here
    assert "event: end" not in rest  # not the job's end: an EventSource reconnects
