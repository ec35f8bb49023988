"""The lean stream reader: server-sent events to pieces, whatever the body's chunk boundaries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from common.errors import RetryableProviderError
from tests.conftest import Simulator
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


CACHED_DETAILS = [
    ({"prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0}}, 2),
    ({"prompt_tokens_details": {"cached_tokens": 0}}, 0),
    ({}, None),
    ({"prompt_tokens_details": None}, None),
    ({"prompt_tokens_details": {"cached_tokens": "n/a"}}, None),
    ({"prompt_tokens_details": "x"}, None),
]


@pytest.mark.parametrize(("details", "cached"), CACHED_DETAILS)
async def test_cached_prompt_tokens_are_read_when_sent_and_absent_when_not(
    details: dict[str, object], cached: int | None
) -> None:
    """prompt_tokens_details.cached_tokens becomes usage.cached_tokens; unsent or unreadable, it is None
    (stored as before) and the answer is still read."""
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, **details}
    pieces = await _pieces(_chunk("hi") + _chunk(finish="stop") + _event({"choices": [], "usage": usage}), 64)
    assert pieces[-1].usage is not None
    assert pieces[-1].usage.cached_tokens == cached
    assert ("cached_tokens" in json.loads(pieces[-1].usage.to_json())) is (cached is not None)


MALFORMED = [
    (b'data: {"choices": [{"delta": {"content": "tru\n\n', "not JSON"),
    (b"data: \xff\xfe\n\n", "not JSON"),
    (b"data:\n\n", "not JSON"),
    (b"data: [1, 2]\n\n", "not a chat completion chunk"),
    (b'data: "just text"\n\n', "not a chat completion chunk"),
    (b'data: {"choices": 5}\n\n', "not a chat completion chunk"),
    (b'data: {"choices": ["x"]}\n\n', "not a chat completion chunk"),
    (b'data: {"choices": [{"delta": "x"}]}\n\n', "not a chat completion chunk"),
    (b'data: {"choices": [{"delta": {"content": 5}}]}\n\n', "not a chat completion chunk"),
    (b'data: {"choices": [{"delta": {}, "finish_reason": 5}]}\n\n', "not a chat completion chunk"),
    (b'data: {"choices": [], "usage": "lots"}\n\n', "not a chat completion chunk"),
]


@pytest.mark.parametrize(("line", "what"), MALFORMED)
async def test_a_malformed_line_raises_a_retryable_error_naming_it(line: bytes, what: str) -> None:
    """A data line that is not JSON, or not a chunk's shape, fails the attempt retryably, even when the
    stream goes on cleanly after it; the text before it was passed on."""
    body = _chunk("before") + line + _chunk(" after") + _chunk(finish="stop") + b"data: [DONE]\n\n"
    seen: list[str] = []
    with pytest.raises(RetryableProviderError) as raised:
        await _collect(stream_pieces(_split(body, 5)), seen)
    assert seen == ["before"]
    assert str(raised.value).startswith(f"the provider sent a malformed stream line ({what}): data:")


async def _collect(pieces: AsyncIterator[StreamPiece], into: list[str]) -> None:
    async for piece in pieces:
        into.append(piece.text)


async def test_a_malformed_line_is_quoted_short_with_secrets_masked() -> None:
    """A huge bad line is quoted by its first 80 characters, its first line only, an API key masked."""
    line = b'data: {"key": "sk-abcd' + b"X" * 40 + b'", ' + b"y" * 10_000 + b"\ndata: second line\n\n"
    with pytest.raises(RetryableProviderError) as raised:
        await _pieces(line, 4096)
    prefix = "the provider sent a malformed stream line (not JSON): "
    message = str(raised.value)
    assert message.startswith(prefix + 'data: {"key": "sk-abcd***", yyy')
    assert message.endswith("y...")
    assert len(message) == len(prefix) + 80


async def test_the_simulators_badline_breaks_one_line_mid_stream_then_goes_on(sim: Simulator) -> None:
    """`[sim:badline]` sends the role and 3 content chunks, one line that is not JSON, then the rest of
    the answer to its finish and [DONE], as a proxy that broke one line but not the connection would."""
    question = {"role": "user", "content": "Through a broken proxy [sim:badline]"}
    body = {"model": "gpt-4o-mini", "messages": [question], "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}/chat/completions", json=body) as resp,
    ):
        events = [event async for event in sse_data(resp.content.iter_any())]
    assert [n for n, event in enumerate(events) if not _is_json(event)] == [1 + 3]
    assert len(events) == 1 + 24 + 1  # role, every content chunk (one of them broken), finish
    assert orjson.loads(events[-1])["choices"][0]["finish_reason"] == "stop"
    assert sim.stats()["streams_malformed"] == 1


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True
