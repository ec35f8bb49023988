"""Non-streamed (`stream: false`) responses: one `chat.completion` object after the generation time."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .answers import Answer
from .errors import error_response
from .faults import Directive
from .limits import Spend
from .pacing import Pace, sleep_until
from .rejections import stream_error_message
from .state import SimState
from .streaming import new_completion_id


async def send_completion(
    request: web.Request,
    state: SimState,
    answer: Answer,
    directive: Directive,
    pace: Pace,
    model: str,
    start: float,
    spend: Spend,
) -> web.StreamResponse:
    stats = state.stats
    if directive.kind == "cut":
        # Drop the connection when the cut would have happened, before any response byte.
        await sleep_until(start + pace.token_at(state.settings.cut_after_chunks))
        if request.transport is not None:
            request.transport.close()
        stats.streams_cut += 1
        return web.Response()
    if directive.kind in ("error", "badline"):
        # Faults inside a stream have no non-streamed form; the nearest equivalent is a 500.
        stats.responses_by_status[500] += 1
        return error_response(500, stream_error_message())
    await sleep_until(start + pace.token_at(len(answer.tokens) - 1))
    finish_reason = None if directive.kind == "nofinish" else answer.finish_reason
    stats.completion_tokens_sent += len(answer.tokens)
    spend.sent += len(answer.tokens)
    stats.responses_by_status[200] += 1
    return web.json_response(completion_body(answer, model, finish_reason), headers=spend.headers)


def completion_body(answer: Answer, model: str, finish_reason: str | None) -> dict[str, Any]:
    completion_tokens = len(answer.tokens)
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(answer.tokens), "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": answer.prompt_tokens + completion_tokens,
        },
    }
