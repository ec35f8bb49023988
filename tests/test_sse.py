"""The lean stream reader: server-sent events to pieces, whatever the body's chunk boundaries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from common.errors import RetryableProviderError
from worker.answering.sse import StreamPiece, sse_data, stream_pieces


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


USAGE = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
BODY = (
    _event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    + _chunk("안녕")
    + b": a comment line\r\n\r\n"
    + _chunk(" world\n")
    + _chunk(finish="stop")
    + USAGE
    + b"data: [DONE]\n\n"
    + b"data: after the end\n\n"
)


async def _split(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _pieces(body: bytes, size: int) -> list[StreamPiece]:
    return [piece async for piece in stream_pieces(_split(body, size))]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
async def test_pieces_do_not_depend_on_chunk_boundaries(size: int) -> None:
    """Split anywhere, even inside a UTF-8 character, the body gives the same text, finish and usage."""
    pieces = await _pieces(BODY, size)
    assert [piece.text for piece in pieces[:-1]] == ["안녕", " world\n"]
    assert pieces[-1].finish_reason == "stop"
    assert pieces[-1].usage is not None
    assert pieces[-1].usage.total_tokens == 5


async def test_data_after_done_is_ignored_and_multiline_data_is_joined() -> None:
    """[DONE] ends the events; several data lines of one event are joined with newlines."""
    body = b'data: {"a":\ndata: 1}\n\ndata: [DONE]\n\ndata: {}\n\n'
    assert [event async for event in sse_data(_split(body, 3))] == [b'{"a":\n1}']


async def test_an_error_event_raises_a_retryable_error_with_its_message() -> None:
    """An error object inside a 200 stream fails the attempt, retryably, with the provider's message."""
    body = _chunk("partial") + _event({"error": {"message": "overloaded", "type": "server_error"}})
    with pytest.raises(RetryableProviderError, match="provider error in stream: overloaded"):
        await _pieces(body, 16)


async def test_a_stream_without_finish_reason_raises() -> None:
    """A body that stops after content, with no finish reason, is a cut stream, not an answer."""
    with pytest.raises(RetryableProviderError, match="without a finish_reason"):
        await _pieces(_chunk("half an ans"), 5)


async def test_no_usage_chunk_gives_no_usage() -> None:
    """A provider that sends no usage leaves it None rather than inventing zeros."""
    pieces = await _pieces(_chunk("hi") + _chunk(finish="length") + b"data: [DONE]\n\n", 9)
    assert pieces[-1] == StreamPiece(finish_reason="length", usage=None)
