"""`POST /v1/embeddings`: admission as for chat (auth, model, rate window, random faults), then vectors
from `simulator.vectors`, or the wrong answers ``bad_embeddings`` asks for."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from aiohttp import web

from .admission import rate_limited, read_request
from .embedding_request import EmbeddingRequest, parse_embedding_request
from .errors import error_body
from .faults import ANSWER_KINDS, Directive, draw_random_fault
from .pacing import sleep_until
from .rejections import rejection_for
from .settings import SimulatorSettings
from .state import STATE_KEY, SimState
from .vectors import Vector, embed

_STATUS_KINDS = frozenset({"429", "500", "503"})
_NO_STREAM_FAULT = Directive("500")
"""What a stream fault (cut, error, badline) drawn for an embeddings request becomes: nothing streams."""


async def handle_embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.stats.embedding_requests += 1
    response = await _serve(request, state)
    state.stats.embedding_responses_by_status[response.status] += 1
    return response


async def _serve(request: web.Request, state: SimState) -> web.Response:
    settings = state.settings
    if not settings.embeddings:
        # What a server without the route says (OpenAI's body for an unknown URL): no model_not_found code.
        body = error_body(f"Invalid URL ({request.method} {request.path})", "invalid_request_error")
        return web.json_response(body, status=404)
    loop = asyncio.get_running_loop()
    await sleep_until(loop.time() + settings.slow_start_ms / 1000.0)
    admitted = await _admit(request, state, settings)
    if isinstance(admitted, web.Response):
        return admitted
    vectors = [embed(text, admitted.dimensions) for text in admitted.inputs]
    vectors = _spoiled(state, vectors)
    state.stats.embedding_inputs += len(admitted.inputs)
    if state.settings.record_requests:
        state.recorded_embeddings.append(admitted.recorded())
    return web.json_response(_body(admitted, vectors))


async def _admit(
    request: web.Request, state: SimState, settings: SimulatorSettings
) -> EmbeddingRequest | web.Response:
    """The request to answer, or the response refusing it: the same checks, in the same order, as chat."""
    parsed = await read_request(request, settings, parse_embedding_request)
    if isinstance(parsed, web.Response):
        return parsed
    limited = rate_limited(state, settings)
    if limited is not None:
        return limited
    # No [sim:...] directives here: inputs are the user's documents, not a test's instructions.
    refused = _fault_response(draw_random_fault(settings, state.rng), settings)
    return refused if refused is not None else parsed


def _fault_response(directive: Directive, settings: SimulatorSettings) -> web.Response | None:
    """The error response a drawn fault gives an embeddings request; None for an answer."""
    if directive.kind in ANSWER_KINDS:
        return None
    if directive.kind not in _STATUS_KINDS:
        directive = _NO_STREAM_FAULT
    return rejection_for(directive, settings, "")


def _spoiled(state: SimState, vectors: list[Vector]) -> list[Vector]:
    """`vectors`, or while ``bad_embeddings`` counts down: alternately one short of them, or the last one a
    component short (or one over, at one dimension), so that a client can be shown to check both."""
    remaining = state.settings.bad_embeddings
    if remaining == 0:
        return vectors
    # Read and written with no await between: concurrent requests each take one of the N.
    state.update_settings({"bad_embeddings": remaining - 1})
    missing = state.stats.bad_embeddings_sent % 2 == 0
    state.stats.bad_embeddings_sent += 1
    if missing:
        return vectors[:-1]
    last = vectors[-1]
    wrong = last[:-1] if len(last) > 1 else embed("", 2)
    return [*vectors[:-1], wrong]


def _body(request: EmbeddingRequest, vectors: list[Vector]) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, request)}
        for index, vector in enumerate(vectors)
    ]
    # Four characters a token, as for chat prompts: OpenAI bills embeddings by prompt tokens only.
    tokens = sum(max(1, len(text) // 4) for text in request.inputs)
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encoded(vector: Vector, request: EmbeddingRequest) -> list[float] | str:
    if request.encoding == "base64":
        # What the openai client decodes: the raw little-endian float32 array.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    floats: list[float] = vector.tolist()
    return floats
