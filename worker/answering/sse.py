"""A lean reader of a chat-completion stream: server-sent events to ``StreamPiece``s, without pydantic.

The stock ``AsyncStream`` builds a typed ``ChatCompletionChunk`` for every chunk (about 190 µs on
a 2-core VM, most of a worker's CPU when answers stream fast); these events have a fixed shape,
so this reads the three fields askq uses straight from ``orjson.loads`` (the standard library's
parser was a fifth of a worker's CPU on 200-token answers, orjson a fifth of that). Only the usage,
once per stream, goes through the typed model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from common.errors import StreamBrokenError, StreamCutError
from common.secrets import redact_secrets
from common.usage import Usage

_DATA = b"data:"
_DONE = b"[DONE]"
_QUOTED = 80
"""Characters of a malformed line quoted in its error: enough to recognise it, not a page of it."""


# Not frozen: one is built per token, and a frozen dataclass sets each field through object.__setattr__.
@dataclass(slots=True)
class StreamPiece:
    """One step of a streamed answer: text, or the end with its finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each event, however the body was split into chunks; ends at ``[DONE]``."""
    pending = b""
    data: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data:
                    event = b"\n".join(data)
                    if event == _DONE:
                        return
                    yield event
                    data = []
            elif line.startswith(_DATA):
                value = line[len(_DATA) :]
                data.append(value[1:] if value.startswith(b" ") else value)
            # Other fields (event:, id:, retry:) and comments carry nothing a chat stream uses.


async def stream_pieces(chunks: AsyncIterator[bytes]) -> AsyncIterator[StreamPiece]:
    """Text pieces, then one end piece; a stream that stops without a finish reason raises, and so does
    a line that is not a chat completion chunk (a broken proxy's): both retryable, as the next attempt
    may well stream cleanly."""
    finish_reason: str | None = None
    usage: Usage | None = None
    events = 0
    async for data in sse_data(chunks):
        events += 1
        # A malformed line shows up as the parser's or a lookup's own error, caught once here: no checks
        # on the hot path but a type test per text piece. The yields inside are safe: ``async for`` throws
        # nothing into this generator but GeneratorExit, which this does not catch.
        try:
            chunk = orjson.loads(data)
            if chunk.get("error"):
                raise StreamBrokenError(f"provider error in stream: {_error_message(chunk['error'])}")
            if chunk.get("usage"):
                usage = Usage.model_validate(chunk["usage"])
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    if not isinstance(text, str):
                        raise TypeError("content is not a string")
                    yield StreamPiece(text=text)
                if choice.get("finish_reason") is not None:
                    finish_reason = choice["finish_reason"]
                    if not isinstance(finish_reason, str):
                        raise TypeError("finish_reason is not a string")
        except orjson.JSONDecodeError:
            raise _malformed("not JSON", data) from None
        except (AttributeError, TypeError, ValidationError):
            raise _malformed("not a chat completion chunk", data) from None
    if finish_reason is None:
        raise StreamCutError("stream ended without a finish_reason", events=events)
    yield StreamPiece(finish_reason=finish_reason, usage=usage)


def _malformed(what: str, data: bytes) -> StreamBrokenError:
    """The error for a line askq cannot read, quoting its start: short, first line only, secrets masked
    (masked before clipping, so no clipped key escapes the mask)."""
    line = redact_secrets("data: " + data[: _QUOTED * 4].decode("utf-8", "replace").split("\n")[0])
    quoted = line if len(line) <= _QUOTED else line[: _QUOTED - 3] + "..."
    return StreamBrokenError(f"the provider sent a malformed stream line ({what}): {quoted}")


def _error_message(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else None
    return redact_secrets(message if isinstance(message, str) else "An error occurred during streaming")
