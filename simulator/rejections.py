"""Error responses chosen by fault directives (random or `[sim:...]`)."""

from __future__ import annotations

from aiohttp import web

from .errors import error_response, retry_after_headers
from .faults import Directive, without_directive
from .settings import SimulatorSettings

_MESSAGES: dict[str, str] = {
    "429": "Rate limit reached for requests (simulated).",
    "500": "The server had an error while processing your request (simulated).",
    "503": "The engine is currently overloaded, please try again later (simulated).",
    "400": "Simulated bad request (sim directive 400).",
    "401": "Simulated authentication failure (sim directive 401): incorrect API key provided.",
    "404": "Simulated not found (sim directive 404): the model does not exist or you have no access to it.",
    "422": "Simulated unprocessable entity (sim directive 422).",
}


def rejection_for(directive: Directive, settings: SimulatorSettings, question: str) -> web.Response | None:
    """The status response a directive demands, or None when it yields a 200."""
    if directive.kind == "echo-error":
        return error_response(400, without_directive(question))
    message = _MESSAGES.get(directive.kind)
    if message is None:
        return None
    headers = None
    if directive.kind == "429":
        retry_after = (
            directive.retry_after_s if directive.retry_after_s is not None else settings.retry_after_s
        )
        headers = retry_after_headers(retry_after)
    return error_response(int(directive.kind), message, headers=headers)


def stream_error_message() -> str:
    return "The server had an error while processing your request (simulated error inside the stream)."
