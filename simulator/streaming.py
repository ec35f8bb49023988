"""Streamed (`stream: true`) 200 responses: normal, cut, error-in-stream, malformed-line and no-finish
variants."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from .answers import Answer
from .faults import Directive
from .limits import Spend
from .pacing import STAMP, Pace, Step, play
from .rejections import stream_error_message
from .sse import DONE, ChunkEncoder, error_event, mangled
from .state import SimState

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


async def send_stream(
    request: web.Request,
    state: SimState,
    answer: Answer,
    directive: Directive,
    pace: Pace,
    model: str,
    include_usage: bool,
    spend: Spend,
) -> web.StreamResponse:
    stats = state.stats
    encoder = ChunkEncoder(new_completion_id(), int(time.time()), model)
    cut_after = state.settings.cut_after_chunks
    resp = web.StreamResponse(headers={**_SSE_HEADERS, **spend.headers} if spend.headers else _SSE_HEADERS)
    stats.responses_by_status[200] += 1
    await resp.prepare(request)
    start = asyncio.get_running_loop().time()

    def count_tokens(sent: int) -> None:
        stats.completion_tokens_sent += sent
        spend.sent += sent

    stamp = state.settings.stamp_tokens
    tokens = [STAMP.decode() + " "] * len(answer.tokens) if stamp else answer.tokens
    if directive.kind == "badline":
        steps = _with_malformed_line(encoder, tokens, pace, cut_after)
        # Counted now: a client that rejects the line hangs up before the stream's end.
        stats.streams_malformed += 1
    else:
        steps = _content_steps(
            encoder, tokens[:cut_after] if directive.kind in ("cut", "error") else tokens, pace
        )
    if directive.kind == "cut":
        # Cut before any content: nothing of the body at all, as a server killed while it read the prompt.
        await play(resp, steps if cut_after else [], start, count_tokens, eof=False, stamp=stamp)
        _cut_connection(request)
        stats.streams_cut += 1
    elif directive.kind == "error":
        steps.append(Step(pace.token_at(len(steps) - 1), error_event(stream_error_message())))
        await play(resp, steps, start, count_tokens, eof=True, stamp=stamp)
        stats.streams_errored += 1
    else:
        finish_reason = None if directive.kind == "nofinish" else answer.finish_reason
        usage = (answer.prompt_tokens, len(answer.tokens)) if include_usage else None
        steps.append(Step(steps[-1].at_s, _tail(encoder, finish_reason, usage)))
        slots = state.slots
        # llama-cpp-python's --interrupt_requests: a request waiting for the model ends this stream.
        stop = (lambda: slots.waiting > 0) if state.settings.interrupt_on_wait else None
        if await play(resp, steps, start, count_tokens, eof=True, stamp=stamp, stop=stop):
            stats.streams_interrupted += 1
        elif directive.kind != "badline":
            stats.streams_completed += 1
    return resp


def _with_malformed_line(encoder: ChunkEncoder, tokens: list[str], pace: Pace, after: int) -> list[Step]:
    """The answer's steps with the chunk after the first `after` mangled, then the rest to the end: a proxy
    that broke one line but not the connection (a client that skipped the line would lose its text)."""
    steps = _content_steps(encoder, tokens[:after], pace)
    broken = tokens[after] if after < len(tokens) else ""
    steps.append(Step(pace.token_at(after), mangled(encoder.content(broken)), 1 if broken else 0))
    rest = enumerate(tokens[after + 1 :], start=after + 1)
    steps.extend(Step(pace.token_at(i), encoder.content(token), 1) for i, token in rest)
    return steps


def _content_steps(encoder: ChunkEncoder, tokens: list[str], pace: Pace) -> list[Step]:
    steps = [Step(0.0, encoder.role())]
    if pace.interval_s == 0 and tokens:
        # All due at once: one step, not one per token to be joined again by play().
        steps.append(Step(pace.first_s, b"".join(map(encoder.content, tokens)), len(tokens)))
    else:
        steps.extend(Step(pace.token_at(i), encoder.content(token), 1) for i, token in enumerate(tokens))
    return steps


def _tail(encoder: ChunkEncoder, finish_reason: str | None, usage: tuple[int, int] | None) -> bytes:
    parts = []
    if finish_reason is not None:
        parts.append(encoder.finish(finish_reason))
    if usage is not None:
        parts.append(encoder.usage(*usage))
    parts.append(DONE)
    return b"".join(parts)


def _cut_connection(request: web.Request) -> None:
    # close() flushes what was written, then sends FIN without the terminating chunk:
    # the client sees an incomplete chunked body, as when a real upstream connection drops.
    transport = request.transport
    if transport is not None:
        transport.close()
