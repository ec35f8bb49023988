"""Server-sent-event encoding of `chat.completion.chunk` objects from pre-rendered JSON templates."""

from __future__ import annotations

import json
from json.encoder import encode_basestring

DONE = b"data: [DONE]\n\n"
_COMPACT = (",", ":")


class ChunkEncoder:
    """Chunks of one stream; the fixed JSON around a token is rendered once so a token costs one escape."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        # Drop the closing brace so the per-chunk tail can be appended to the shared head.
        self._head = "data: " + json.dumps(head, separators=_COMPACT, ensure_ascii=False)[:-1]
        self._content_prefix = self._head + ',"choices":[{"index":0,"delta":{"content":'
        self._content_suffix = '},"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        return self._choice('{"role":"assistant","content":""}', "null")

    def content(self, token: str) -> bytes:
        return (self._content_prefix + encode_basestring(token) + self._content_suffix).encode()

    def finish(self, reason: str) -> bytes:
        return self._choice("{}", encode_basestring(reason))

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return f'{self._head},"choices":[],"usage":{json.dumps(usage, separators=_COMPACT)}}}\n\n'.encode()

    def _choice(self, delta: str, finish_reason: str) -> bytes:
        choice = f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_reason}}}'
        return f'{self._head},"choices":[{choice}]}}\n\n'.encode()


def mangled(event: bytes) -> bytes:
    """``event`` cut off half-way through its JSON, as a proxy that split or truncated a line passes it on:
    a ``data:`` line that is not JSON, in a stream that otherwise goes on."""
    line = event.rstrip(b"\n")
    return line[: len(line) // 2] + b"\n\n"


def error_event(message: str, error_type: str = "server_error") -> bytes:
    """The error object OpenAI sends inside an already-started 200 stream."""
    error = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return f"data: {json.dumps(error, separators=_COMPACT, ensure_ascii=False)}\n\n".encode()
