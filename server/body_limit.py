"""The upload limit, as ASGI middleware: a body declared over it is refused before a byte is read,
and one that grows past it while it streams (chunked, no Content-Length) is cut there, so that no
route, and no multipart parser spooling to disk, ever receives more than the limit."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_bytes: int) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit_bytes:
            await self._refuse(send, f"the body is {int(declared):,} bytes")
            return
        if declared in (b"", b"0") and b"transfer-encoding" not in headers:
            # No body (HTTP/1.1 has none without either header): nothing to count, and the response
            # (a live stream's thousands of sends) goes out without a wrapper of ours.
            await self.app(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit_bytes:
                    over = True
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if over:
                # The app answered the cut body its own way (FastAPI: 400 "error parsing the body"):
                # what it sends is dropped, and the refusal that says why goes instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, f"the body grew past {self.limit_bytes:,} bytes")
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refuse(send, f"the body grew past {self.limit_bytes:,} bytes")

    async def _refuse(self, send: Send, what: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": f"{what}; this server takes at most {self.limit_bytes:,}",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "request_too_large",
                }
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
