"""Server-Sent Events on the wire: an event's lines, and the response that streams them.

The live routes' one response type, as a plain ASGI app: each frame the stream yields goes out in one
``send``, straight, with nothing done per frame but the send. Beside it, one task notices the client
hanging up (the stream is cancelled: its readers leave the hub) and one sends a keep-alive comment
every ``keepalive_s`` and ends the stream when the server stops.

It replaced sse-starlette's ``EventSourceResponse``, which wrapped every send in a cancel scope of
its own and encoded each event through a string buffer: with hundreds of streams woken at each flush
of a worker, the server's time per event is what the last stream of a flush waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

SEP = "\r\n"
"""Line ends as sse-starlette wrote them: any of CRLF, LF, CR ends an SSE line."""


def frame(kind: str, data: str, cursor: str | None = None) -> bytes:
    """One event: its ``id`` (when it has a place), ``event`` and ``data``. ``data`` is one line of
    JSON (which escapes the line ends in its strings); ``kind`` and ``cursor`` are the server's own."""
    if cursor is None:
        return f"event: {kind}{SEP}data: {data}{SEP}{SEP}".encode()
    return f"id: {cursor}{SEP}event: {kind}{SEP}data: {data}{SEP}{SEP}".encode()


def comment(text: str) -> bytes:
    """Comment lines (ignored by an ``EventSource``, shown by ``curl -N``), one per line of ``text``."""
    return "".join(f": {line}{SEP}" for line in text.splitlines()).encode() + SEP.encode()


def _ping() -> bytes:
    return comment(f"ping - {datetime.now(UTC)}")


class EventStreamResponse(Response):
    """A ``text/event-stream`` response of ``frames``; ``on_close`` runs once the stream is over,
    however it ended (its end, the client gone, the server stopping, an error). A ``Response`` for
    FastAPI to hand on as it is (its ``__init__`` is not called: there is no body to render)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        headers: Mapping[str, str],
        keepalive_s: float,
        stopping: asyncio.Event,
        on_close: Callable[[], None],
    ) -> None:
        self._frames = frames
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        self._keepalive_s = keepalive_s
        self._stopping = stopping
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            pump = asyncio.create_task(self._pump(send))
            watchers = [
                asyncio.create_task(self._until_gone(receive)),
                asyncio.create_task(self._keep_alive(send)),
            ]
            try:
                await asyncio.wait([pump, *watchers], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, *watchers):
                    task.cancel()
                await asyncio.gather(pump, *watchers, return_exceptions=True)
            for task in (pump, *watchers):
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
            if pump.cancelled():
                # Cut short (the client gone, the server stopping): the body still ends as HTTP says,
                # so a client still there sees a clean end and reconnects. Gone, uvicorn drops it.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._on_close()
        if self.background is not None:
            await self.background()

    async def _pump(self, send: Send) -> None:
        try:
            async for data in self._frames:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            await self._frames.aclose()  # cut short at a send: its followers' cleanup runs now
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _until_gone(self, receive: Receive) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()

    async def _keep_alive(self, send: Send) -> None:
        """A comment every ``keepalive_s`` (proxies keep a quiet stream open); returns when the
        server stops, which ends the stream: uvicorn would otherwise wait for it before stopping."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._keepalive_s)
                return
            await send({"type": "http.response.body", "body": _ping(), "more_body": True})
