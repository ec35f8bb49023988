"""The SSE bench's clients: many streams of ``/api/jobs/{id}/events`` in one process, as browsers would.

    python -m bench.sse_clients URL JOBS_JSON PER_JOB OUT_JSON

It opens ``PER_JOB`` streams of each job, prints ``connected`` once every one was answered 200, and
records each stream's events: their seqs, the deltas' text, and the latency of every stamped token
(receive time minus the simulator's write time). On SIGUSR1 (the reconnect storm) every stream hangs
up at once and comes back with the id of its last whole event as ``Last-Event-ID``; latencies from
then on are not kept (a reconnect's backlog is not live). It writes OUT_JSON once every stream ended.

Each stream is an asyncio ``Protocol`` on its own socket that parses HTTP/1.1 and SSE itself, in the
event loop's callback for the bytes read: this process is the measuring instrument, and with an HTTP
client library (a task woken per chunk, a cancel scope per read) it spent more CPU per event than the
server it measures, and the streams woken by one flush waited on each other here, not there.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import uvloop

from bench.sse_wire import ChunkedBody, parse_head, sse_blocks, sse_fields


@dataclass
class Stream:
    job_id: str
    last_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    events: int = 0
    ended: bool = False


class StreamProtocol(asyncio.Protocol):
    """One stream's connection: its request, its response's head, then its events as they come."""

    def __init__(self, clients: Clients, stream: Stream, request: bytes) -> None:
        self._clients = clients
        self._stream = stream
        self._request = request
        self._head = b""
        self._body: ChunkedBody | None = None
        self._text = b""
        self.transport: asyncio.Transport | None = None
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        received = time.time()
        if self._body is None:
            data = self._read_head(data)
            if self._body is None:
                return
        *whole, self._text = sse_blocks(self._text + self._body.feed(data))
        for block in whole:
            self._clients.event(self._stream, block, received)
        if self._body.done and not self.finished.done():
            self.finished.set_result(None)
            self.hang_up()

    def _read_head(self, data: bytes) -> bytes:
        self._head += data
        head = parse_head(self._head)
        if head is None:
            return b""
        response, rest = head
        if response.status != 200 or not response.chunked:
            self._fail(RuntimeError(f"{response.status_line}: {rest[:200]!r}"))
            return b""
        self._body = ChunkedBody()
        self.answered.set_result(None)
        return rest

    def _fail(self, error: BaseException) -> None:
        for future in (self.answered, self.finished):
            if not future.done():
                future.set_exception(error)
        self.hang_up()

    def hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self._fail(ConnectionError(f"{self._stream.job_id}: connection lost mid-stream ({exc})"))


class Clients:
    def __init__(self, url: str, job_ids: list[str], per_job: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams = [Stream(job_id) for job_id in job_ids for _ in range(per_job)]
        self.latencies_ms: list[float] = []
        self.live = True
        """Until the storm: the latencies kept are of live events, not of a reconnect's backlog."""
        self.live_events = 0
        self.storm_at: float | None = None
        self.reconnected_at: float | None = None
        self.cpu_s_at_connected = self.cpu_s_at_storm = 0.0
        self._storm = asyncio.Event()

    async def run(self) -> None:
        protocols = await self._connect(self.streams)
        self.cpu_s_at_connected = time.process_time()
        print("connected", flush=True)
        following: asyncio.Future[Any] = asyncio.gather(*(protocol.finished for protocol in protocols))
        storm: asyncio.Future[Any] = asyncio.ensure_future(self._storm.wait())
        await asyncio.wait({storm, following}, return_when=asyncio.FIRST_COMPLETED)
        if not self._storm.is_set():  # every stream ended first: no storm
            storm.cancel()
            await following
            return
        self.storm_at, self.live, self.cpu_s_at_storm = time.time(), False, time.process_time()
        for protocol in protocols:  # every client hangs up at once
            if not protocol.finished.done():
                protocol.finished.cancel()
                protocol.hang_up()
        await asyncio.gather(following, return_exceptions=True)
        protocols = await self._connect([stream for stream in self.streams if not stream.ended])
        self.reconnected_at = time.time()
        await asyncio.gather(*(protocol.finished for protocol in protocols))

    async def _connect(self, streams: list[Stream]) -> list[StreamProtocol]:
        """The streams' connections, once each was answered 200 (an error is raised here)."""
        loop = asyncio.get_running_loop()
        connected = await asyncio.gather(
            *(loop.create_connection(self._factory(stream), self.host, self.port) for stream in streams)
        )
        protocols = [protocol for _, protocol in connected]
        await asyncio.gather(*(protocol.answered for protocol in protocols))
        return protocols

    def _factory(self, stream: Stream) -> Callable[[], StreamProtocol]:
        """The stream's protocol, asking from its last whole event on (if it had one)."""
        resume = f"Last-Event-ID: {stream.last_id}\r\n" if stream.last_id else ""
        request = (
            f"GET /api/jobs/{stream.job_id}/events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n"
        )
        return lambda: StreamProtocol(self, stream, request.encode())

    def storm(self) -> None:
        self._storm.set()

    def event(self, stream: Stream, block: bytes, received: float) -> None:
        fields = sse_fields(block)
        if b"data" not in fields:
            return  # a comment (keep-alive, a notice)
        stream.events += 1
        if b"id" in fields:
            stream.last_id = fields[b"id"].decode()
        kind = fields.get(b"event", b"message")
        if kind == b"end":
            stream.ended = True
            return
        data: dict[str, Any] = json.loads(fields[b"data"])
        if "seq" in data:
            stream.seqs.append(data["seq"])
        if kind == b"delta":
            stream.text.append(data["text"])
            if self.live:
                self.latencies_ms += [(received - float(stamp)) * 1000 for stamp in data["text"].split()]
        if self.live:
            self.live_events += 1

    def report(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms,
            "live_events": self.live_events,
            "storm_at": self.storm_at,
            "reconnected_at": self.reconnected_at,
            "cpu_s_at_connected": self.cpu_s_at_connected,
            "cpu_s_at_storm": self.cpu_s_at_storm,
            "streams": [
                {
                    "job_id": s.job_id,
                    "seqs": s.seqs,
                    "text": "".join(s.text),
                    "events": s.events,
                    "ended": s.ended,
                }
                for s in self.streams
            ],
        }


async def main(url: str, job_ids: list[str], per_job: int, out: Path) -> None:
    clients = Clients(url, job_ids, per_job)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, clients.storm)
    await clients.run()
    out.write_text(json.dumps(clients.report()), encoding="utf-8")


if __name__ == "__main__":
    url, jobs_path, per_job, out = sys.argv[1:5]
    job_ids: list[str] = json.loads(Path(jobs_path).read_text(encoding="utf-8"))
    uvloop.run(main(url, job_ids, int(per_job), Path(out)))  # the server runs on uvloop too
