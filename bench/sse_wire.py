"""Just enough HTTP/1.1 and SSE for the bench's clients (``bench.sse_clients``) to read a stream.

A response's head, a chunked body (what uvicorn sends for a stream of unknown length), and the SSE
events in it. Written for the bytes ``askq serve`` sends, in the loop's read callback: no copies
beyond what splitting needs, no task, no timer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Response:
    status_line: str
    status: int
    chunked: bool


def parse_head(data: bytes) -> tuple[Response, bytes] | None:
    """The response's status and framing, and the bytes after its head; None until the head is whole."""
    end = data.find(_HEAD_END)
    if end < 0:
        return None
    status_line, *header_lines = data[:end].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)
    }
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    return Response(status_line, status, chunked), data[end + len(_HEAD_END) :]


class ChunkedBody:
    """A chunked body's data as its bytes arrive (``Transfer-Encoding: chunked``); ``done`` at its end."""

    def __init__(self) -> None:
        self._raw = b""
        self._data_left = 0
        """Bytes of the current chunk's data still to come."""
        self._crlf_next = False
        """The current chunk's data came whole: its CRLF is next."""
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The body's bytes that ``data`` brings (the chunks' framing taken out)."""
        raw = self._raw + data if self._raw else data
        at, out = 0, []
        while not self.done:
            if self._data_left:
                piece = raw[at : at + self._data_left]
                out.append(piece)
                at, self._data_left = at + len(piece), self._data_left - len(piece)
                if self._data_left:
                    break  # the chunk goes on in a later read
                self._crlf_next = True
            if self._crlf_next:
                if len(raw) - at < 2:
                    break
                at, self._crlf_next = at + 2, False
            line_end = raw.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(raw[at:line_end].split(b";", 1)[0], 16)
            at = line_end + 2
            self._data_left = size
            self.done = size == 0  # the last chunk; trailers are not read
        self._raw = raw[at:]
        return out[0] if len(out) == 1 else b"".join(out)


def sse_blocks(text: bytes) -> list[bytes]:
    """The whole events in ``text`` (a blank line ends each), then what is left of it."""
    return _EVENT_END.split(text)


def sse_fields(block: bytes) -> dict[bytes, bytes]:
    """One event's fields (comment lines left out); a field given twice keeps its last value."""
    fields: dict[bytes, bytes] = {}
    for line in _LINE.split(block):
        if line and not line.startswith(b":"):
            name, _, value = line.partition(b":")
            fields[name] = value.removeprefix(b" ")
    return fields
