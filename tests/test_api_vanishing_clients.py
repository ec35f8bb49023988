"""Clients of live streams that vanish mid-answer (reset or closed, many at once) leave ``askq serve``'s
stderr quiet: no asyncio warning per write to a lost connection, no traceback."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.api_server import api_server
from tests.conftest import Simulator
from tests.helpers import eventually, logged_events, run_burst_worker

CLIENTS = 24
FAST = {"ttft_ms": 20, "tokens_per_s": 400, "answer_tokens": 2000}
"""Answers streaming for seconds, many events a second: every stream is being written when its client goes."""


async def _open_stream(url: str, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    return reader, writer


def _vanish(writer: asyncio.StreamWriter, reset: bool) -> None:
    """Gone as a killed browser goes: a reset (unread data, or SO_LINGER 0), else a plain close."""
    if reset:
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()
    else:
        writer.close()


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
async def test_clients_vanishing_mid_stream_leave_no_warning_on_stderr(
    redis: Redis, redis_url: str, config: AskqConfig, sim: Simulator, write: Any, reset: bool
) -> None:
    """Streams cut by their clients mid-answer end without asyncio's 'socket.send() raised exception.'."""
    sim.configure(**FAST)
    lines = "".join(f'{{"id": "q{i}", "question": "Tell me a long story {i}"}}\n' for i in range(4))
    await submit_file(redis, write("q.jsonl", lines), config, batch="gone")
    said: list[str] = []
    with api_server(redis_url, said_after=said) as server:
        worker = asyncio.create_task(run_burst_worker(config, redis_url))
        try:
            await eventually(lambda: _streaming(redis, "gone:q0"))
            paths = ["/api/batches/gone/events", *(f"/api/jobs/gone:q{i}/events" for i in range(4))]
            streams = [await _open_stream(server.url, paths[i % len(paths)]) for i in range(CLIENTS)]
            for reader, _ in streams:  # each is being written to: some of its events have arrived
                await reader.readuntil(b"event: delta")
            for _, writer in streams:
                _vanish(writer, reset)
            # The server goes on streaming to its other clients (one more, read to the end of a delta).
            reader, writer = await _open_stream(server.url, "/api/batches/gone/events")
            await reader.readuntil(b"event: delta")
            writer.close()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    noise = [line for line in said if "socket.send()" in line or "Traceback" in line]
    assert noise == [], "".join(said[:20])


async def _streaming(redis: Redis, job_id: str) -> bool:
    return len(await logged_events(redis, job_id)) >= 3
