"""``close_after_response``: llama-server's habit of closing each connection after its response, while
the response says the connection stays open (``Connection: keep-alive``, ``Keep-Alive: timeout=5,
max=100``). A client that believes the headers writes its next request into a closed socket."""

from __future__ import annotations

from aiohttp import hdrs, web

from .state import STATE_KEY

KEEP_ALIVE = "timeout=5, max=100"
"""What llama-server (cpp-httplib) advertises."""


async def close_after_response(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: advertise keep-alive, then close once the response is written."""
    if not request.app[STATE_KEY].settings.close_after_response:
        return
    # Set before aiohttp computes its own: a Connection header already there is left as it is.
    response.headers[hdrs.CONNECTION] = "keep-alive"
    response.headers[hdrs.KEEP_ALIVE] = KEEP_ALIVE
    # The server closes the connection once this response is written, whatever the headers said.
    response.force_close()
