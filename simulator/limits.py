"""Chat's limits: calls in flight (`overload_in_flight`), requests per minute (`rpm_limit`) and tokens
per minute (`tpm_limit`), with the rate-limit headers that report the last two."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from aiohttp import web

from .admission import past_rpm_limit
from .answers import prompt_tokens
from .chat_request import ChatRequest
from .errors import error_response, retry_after_headers
from .ratelimit_headers import go_duration, rate_limit_headers
from .settings import SimulatorSettings
from .state import SimState


@dataclass(slots=True)
class Spend:
    """What one admitted request took from the limits; `settle` gives back what its answer did not use."""

    headers: dict[str, str]
    """The rate-limit headers its answer carries (and a 429 its directive gives it)."""
    tokens: int = 0
    """Taken from the token bucket at admission: prompt plus `completion` (0 without `tpm_limit`)."""
    completion: int = 0
    """Completion tokens reserved: `max_tokens`, or a full answer's length when it sends none."""
    epoch: int = 0
    """The bucket's at admission: a request admitted before a reset gives nothing back after it."""
    sent: int = 0
    """Completion tokens written so far: counted by the response as it writes them."""


def overloaded(state: SimState, settings: SimulatorSettings) -> web.Response | None:
    """A bare 429 (no Retry-After, no rate-limit headers: a server that only knows it is full) when
    `overload_in_flight` requests are in flight already; decided before the body is read."""
    limit = settings.overload_in_flight
    if limit <= 0 or state.stats.in_flight < limit:
        return None
    state.stats.refused_overload += 1
    return error_response(429, f"Too many requests in flight: the server takes {limit} at once (simulated).")


def admit(state: SimState, settings: SimulatorSettings, chat: ChatRequest) -> Spend | web.Response:
    """The request's spend, or a 429 with Retry-After and the rate-limit headers when it is past the token
    bucket or the request window. Tokens are checked first so that a refused request takes nothing."""
    now = asyncio.get_running_loop().time()
    tpm, window_s = settings.tpm_limit, settings.tpm_window_s
    tokens = completion = 0
    if tpm:
        completion = chat.max_tokens if chat.max_tokens is not None else settings.answer_tokens
        tokens = prompt_tokens(chat.messages) + completion
        wait_s = state.bucket.wait_for(now, tpm, window_s, tokens)
        if wait_s > 0:
            state.stats.refused_tpm += 1
            return _past_tpm_limit(state, settings, chat.model, tokens, wait_s, now)
    retry_after = state.limiter.acquire(now, settings.rpm_limit, settings.rpm_window_s)
    if retry_after is not None:
        state.stats.refused_rpm += 1
        return past_rpm_limit(settings, retry_after, rate_limit_headers(state, settings, now))
    if tpm:
        state.bucket.take(now, tpm, window_s, tokens)
        state.stats.tokens_admitted += tokens
    return Spend(rate_limit_headers(state, settings, now), tokens, completion, state.bucket.epoch)


def settle(state: SimState, spend: Spend, *, refused: bool) -> None:
    """Give back what the answer did not use: everything for a request refused with a status, else the
    reserved completion tokens it did not send (an answer longer than its reservation takes the rest)."""
    if not spend.tokens or spend.epoch != state.bucket.epoch:
        return  # no token limit at admission, or a reset since: the bucket is not the one it took from
    unused = spend.tokens if refused else spend.completion - spend.sent
    settings = state.settings
    if settings.tpm_limit:
        now = asyncio.get_running_loop().time()
        state.bucket.take(now, settings.tpm_limit, settings.tpm_window_s, -unused)
    if unused > 0:
        state.stats.tokens_returned += unused
    else:
        state.stats.tokens_admitted -= unused


def _past_tpm_limit(
    state: SimState, settings: SimulatorSettings, model: str, tokens: int, wait_s: float, now: float
) -> web.Response:
    headers = rate_limit_headers(state, settings, now)
    tpm = settings.tpm_limit
    if math.isinf(wait_s):
        # OpenAI's answer to a request larger than the limit: no wait makes it fit, so no Retry-After.
        message = (
            f"Request too large for {model} on tokens per min (TPM): Limit {tpm}, Requested {tokens}. "
            "The input or output tokens must be reduced in order to run successfully (simulated)."
        )
        return error_response(429, message, headers=headers, error_type="tokens")
    capacity = tpm * settings.tpm_window_s / 60
    used = max(0, math.ceil(capacity - state.bucket.level(now, tpm, settings.tpm_window_s)))
    message = (
        f"Rate limit reached for {model} on tokens per min (TPM): Limit {tpm}, Used {used}, "
        f"Requested {tokens}. Please try again in {go_duration(wait_s)} (simulated)."
    )
    # Rounded up: a client that waits what it is told must find the tokens there.
    headers.update(retry_after_headers(math.ceil(wait_s * 1000) / 1000))
    return error_response(429, message, headers=headers, error_type="tokens")
