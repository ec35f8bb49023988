"""The SSE bench's clients: many streams of ``/api/jobs/{id}/events`` in one process, as browsers would.

    python -m bench.sse_clients URL JOBS_JSON PER_JOB OUT_JSON

It opens ``PER_JOB`` streams of each job, prints ``connected`` once every one was answered 200, and
records each stream's events: their seqs, the deltas' text, and the latency of every stamped token
(receive time minus the simulator's write time). On SIGUSR1 (the reconnect storm) every stream hangs
up at once and comes back with the id of its last whole event as ``Last-Event-ID``; latencies from
then on are not kept (a reconnect's backlog is not live). It writes OUT_JSON once every stream ended.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvloop

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


@dataclass
class Stream:
    job_id: str
    last_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    events: int = 0
    ended: bool = False


class Clients:
    def __init__(self, url: str, job_ids: list[str], per_job: int) -> None:
        self.url = url
        self.streams = [Stream(job_id) for job_id in job_ids for _ in range(per_job)]
        self.latencies_ms: list[float] = []
        self.live = True
        """Until the storm: the latencies kept are of live events, not of a reconnect's backlog."""
        self.live_events = 0
        self.storm_at: float | None = None
        self.reconnected_at: float | None = None
        self.cpu_s_at_connected = self.cpu_s_at_storm = 0.0
        self._answered = self._expected = 0
        self._all_answered = asyncio.Event()
        self._storm = asyncio.Event()

    async def run(self) -> None:
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(120.0), limits=limits) as client:
            following = await self._connect(client, self.streams)
            self.cpu_s_at_connected = time.process_time()
            print("connected", flush=True)
            storm = asyncio.ensure_future(self._storm.wait())
            await asyncio.wait({storm, following}, return_when=asyncio.FIRST_COMPLETED)
            if not self._storm.is_set():  # every stream ended first: no storm
                storm.cancel()
                await following
                return
            self.storm_at, self.live, self.cpu_s_at_storm = time.time(), False, time.process_time()
            following.cancel()  # every client hangs up at once
            await asyncio.gather(following, return_exceptions=True)
            following = await self._connect(client, [stream for stream in self.streams if not stream.ended])
            self.reconnected_at = time.time()
            await following

    async def _connect(self, client: httpx2.AsyncClient, streams: list[Stream]) -> asyncio.Future[Any]:
        """The streams followed, once each was answered 200 (or all ended)."""
        self._answered, self._expected, self._all_answered = 0, len(streams), asyncio.Event()
        following: asyncio.Future[Any] = asyncio.gather(*(self._follow(client, stream) for stream in streams))
        answered: asyncio.Future[Any] = asyncio.ensure_future(self._all_answered.wait())
        await asyncio.wait({answered, following}, return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()
        if following.done():
            following.result()  # an error: raised here
        return following

    def storm(self) -> None:
        self._storm.set()

    async def _follow(self, client: httpx2.AsyncClient, stream: Stream) -> None:
        headers = {"Last-Event-ID": stream.last_id} if stream.last_id else {}
        url = f"{self.url}/api/jobs/{stream.job_id}/events"
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {(await response.aread())[:200]!r}")
            self._answered += 1
            if self._answered == self._expected:
                self._all_answered.set()
            buffer = b""
            async for chunk in response.aiter_bytes():
                received = time.time()
                *whole, buffer = _EVENT_END.split(buffer + chunk)
                for block in whole:
                    self._event(stream, block, received)

    def _event(self, stream: Stream, block: bytes, received: float) -> None:
        fields: dict[bytes, bytes] = {}
        for line in _LINE.split(block):
            if line and not line.startswith(b":"):
                name, _, value = line.partition(b":")
                fields[name] = value.removeprefix(b" ")
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
