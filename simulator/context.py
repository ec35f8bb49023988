"""A prompt past the model's context (``context_tokens``), refused as llama-cpp-python's server does.

Without streaming: 400 ``context_length_exceeded`` with its message. Streaming: the server has sent
200 and its event-stream headers before the model finds the prompt too long, so the body just ends,
empty: no data line, no ``[DONE]``.
"""

from __future__ import annotations

from aiohttp import web

from .errors import error_response
from .settings import SimulatorSettings

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def past_context(settings: SimulatorSettings, prompt_tokens: int) -> bool:
    return 0 < settings.context_tokens < prompt_tokens


async def refuse_past_context(
    request: web.Request,
    settings: SimulatorSettings,
    prompt_tokens: int,
    *,
    stream: bool,
    headers: dict[str, str],
) -> web.StreamResponse:
    """``headers``: the rate-limit headers, which the streamed 200 carries as every answer does."""
    if stream:
        response = web.StreamResponse(headers={**_SSE_HEADERS, **headers})
        await response.prepare(request)
        await response.write_eof()
        return response
    message = (
        f"This model's maximum context length is {settings.context_tokens} tokens. However, you "
        f"requested {prompt_tokens} tokens ({prompt_tokens} in the messages, None in the completion). "
        "Please reduce the length of the messages or completion."
    )
    return error_response(400, message, param="messages", code="context_length_exceeded")
