"""`POST /v1/chat/completions`: admission (calls in flight, auth, validation, request window, token
bucket), fault choice, dispatch, and giving back the tokens an answer did not use."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .admission import read_request
from .answers import make_answer
from .chat_request import ChatRequest, parse_chat_request
from .completion import send_completion
from .context import past_context, refuse_past_context
from .errors import error_response
from .faults import Directive, DirectiveError, draw_random_fault, find_plan, without_directive
from .limits import Spend, admit, overloaded, settle
from .pacing import Pace, sleep_until
from .rejections import rejection_for
from .settings import SimulatorSettings
from .state import STATE_KEY, SimState
from .streaming import send_stream


async def handle_chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    refused = overloaded(state, state.settings)
    if refused is not None:
        # Not in flight: the refusal costs the server nothing, and max_in_flight stays <= the limit.
        state.stats.requests_total += 1
        state.stats.responses_by_status[429] += 1
        return refused
    state.stats.request_started()
    try:
        return await _serve(request, state)
    except (ConnectionResetError, asyncio.CancelledError):
        # The server cancels a handler when its client hangs up (and on shutdown).
        state.stats.client_disconnects += 1
        raise
    finally:
        state.stats.request_finished()


async def _serve(request: web.Request, state: SimState) -> web.StreamResponse:
    settings = state.settings
    loop = asyncio.get_running_loop()
    await sleep_until(loop.time() + settings.slow_start_ms / 1000.0)
    admitted = await _admit(request, state, settings)
    if isinstance(admitted, web.Response):
        state.stats.responses_by_status[admitted.status] += 1
        return admitted
    chat, directive, spend = admitted
    response: web.StreamResponse | None = None
    try:
        response = await _respond(request, state, settings, chat, directive, spend)
        return response
    finally:  # also when the client hangs up (CancelledError)
        settle(state, spend, refused=response is not None and response.status != 200)


async def _respond(
    request: web.Request,
    state: SimState,
    settings: SimulatorSettings,
    chat: ChatRequest,
    directive: Directive,
    spend: Spend,
) -> web.StreamResponse:
    rejection = rejection_for(directive, settings, chat.key)
    if rejection is not None:
        if rejection.status == 429:
            rejection.headers.update(spend.headers)
        state.stats.responses_by_status[rejection.status] += 1
        return rejection
    slots = settings.slots
    held = await state.slots.acquire(slots)  # beyond the slots: wait, sending nothing
    try:
        return await _answer(request, state, settings, chat, directive, spend)
    finally:
        if held:
            state.slots.release(state.settings.slots)


async def _answer(
    request: web.Request,
    state: SimState,
    settings: SimulatorSettings,
    chat: ChatRequest,
    directive: Directive,
    spend: Spend,
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    echo = without_directive(chat.key) if directive.kind == "echo" else None
    answer = make_answer(chat.model, chat.messages, settings.answer_tokens, chat.max_tokens, echo=echo)
    if past_context(settings, answer.prompt_tokens):
        state.stats.responses_by_status[200 if chat.stream else 400] += 1
        return await refuse_past_context(
            request, settings, answer.prompt_tokens, stream=chat.stream, headers=spend.headers
        )
    if settings.record_requests:
        state.recorded.append(chat.recorded("".join(answer.tokens)))
    jitter_ms = (
        state.rng.uniform(-settings.ttft_jitter_ms, settings.ttft_jitter_ms)
        if settings.ttft_jitter_ms
        else 0.0
    )
    pace = Pace.of(settings.ttft_ms + jitter_ms, directive.slow_ms, settings.tokens_per_s)
    if chat.stream:
        # usage_chunk false: stream_options ignored, as llama-cpp-python's server does.
        include_usage = chat.include_usage and settings.usage_chunk
        return await send_stream(request, state, answer, directive, pace, chat.model, include_usage, spend)
    return await send_completion(request, state, answer, directive, pace, chat.model, loop.time(), spend)


async def _admit(
    request: web.Request, state: SimState, settings: SimulatorSettings
) -> tuple[ChatRequest, Directive, Spend] | web.Response:
    """The request, the directive for this attempt and what it took from the limits, or the response
    refusing it."""
    chat = await read_request(request, settings, parse_chat_request)
    if isinstance(chat, web.Response):
        return chat
    attempt = state.stats.count_attempt(chat.key)
    try:
        plan = find_plan(chat.key)
    except DirectiveError as exc:
        return error_response(400, str(exc), param="messages", code="invalid_sim_directive")
    spend = admit(state, settings, chat)
    if isinstance(spend, web.Response):
        return spend
    directive = plan.for_attempt(attempt) if plan is not None else draw_random_fault(settings, state.rng)
    return chat, directive, spend
