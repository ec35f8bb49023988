"""What chat and embeddings requests pass first, in the same order: the key, the body, the model, and
(after chat's own directive checks) the rate window."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web

from .auth import check_api_key
from .chat_request import RequestError
from .errors import error_response, retry_after_headers
from .models import unknown_model
from .settings import SimulatorSettings
from .state import SimState


class _ForAModel(Protocol):
    @property
    def model(self) -> str: ...


Parsed = TypeVar("Parsed", bound=_ForAModel)


async def read_request(
    request: web.Request, settings: SimulatorSettings, parse: Callable[[Any], Parsed]
) -> Parsed | web.Response:
    """The body parsed by ``parse``, or the response refusing it: a bad key (401), a body that breaks
    the API's contract (400, naming its ``param``), a model the server does not serve (404)."""
    refused = check_api_key(request, settings)
    if refused is not None:
        return refused
    try:
        parsed = parse(json.loads(await request.read()))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and RequestError alike
        if isinstance(exc, RequestError):
            return error_response(400, exc.message, param=exc.param, code=exc.code)
        return error_response(400, "We could not parse the JSON body of your request.")
    refused = unknown_model(parsed.model, settings.strict_models)
    return refused if refused is not None else parsed


def rate_limited(state: SimState, settings: SimulatorSettings) -> web.Response | None:
    """A 429 with Retry-After when the request is past ``rpm_limit`` in its window; None to go on.
    (Chat's admission, ``simulator.limits``, also counts tokens and reports the limits in headers.)"""
    now = asyncio.get_running_loop().time()
    retry_after = state.limiter.acquire(now, settings.rpm_limit, settings.rpm_window_s)
    if retry_after is None:
        return None
    return past_rpm_limit(settings, retry_after)


def past_rpm_limit(
    settings: SimulatorSettings, retry_after_s: float, headers: dict[str, str] | None = None
) -> web.Response:
    message = f"Rate limit reached: {settings.rpm_limit} requests per minute (simulated)."
    return error_response(429, message, headers={**retry_after_headers(retry_after_s), **(headers or {})})
