"""``close_after_response``: llama-server's habit of giving up each connection after its response, while
the response says the connection stays open (``Connection: keep-alive``, ``Keep-Alive: timeout=5,
max=100``). A client that believes the headers writes its next request into a dead connection.

Closing the socket right after the response made the failure a race (whether the client saw the close
before it wrote again): it reproduced at a heavy load and not at a light one. Instead, the connection
stays open and the next request written into it is dropped unanswered (the socket aborted), which is
what the client meets every time it reuses such a connection, whatever the timing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from .state import STATE_KEY

KEEP_ALIVE = "timeout=5, max=100"
"""What llama-server (cpp-httplib) advertises."""
SERVED: web.AppKey[weakref.WeakSet[asyncio.BaseTransport]] = web.AppKey("served_connections")
"""Connections that carried a response while close_after_response was on: the server gave them up."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIX = "/_sim/"
"""The simulator's own controls are not the server it plays: their connections are kept as any are."""


async def close_after_response(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: advertise keep-alive, and remember the connection as given up."""
    settings = request.app[STATE_KEY].settings
    if not settings.close_after_response or request.transport is None or _admin(request):
        return
    # Set before aiohttp computes its own: a Connection header already there is left as it is.
    response.headers[hdrs.CONNECTION] = "keep-alive"
    response.headers[hdrs.KEEP_ALIVE] = KEEP_ALIVE
    request.app[SERVED].add(request.transport)


@web.middleware
async def drop_reused(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request on a given-up connection is never answered: the socket is aborted under it."""
    transport = request.transport
    if transport is not None and transport in request.app[SERVED] and not _admin(request):
        transport.abort()
        return web.Response()  # written into the aborted socket: aiohttp drops it as a disconnection
    return await handler(request)


def _admin(request: web.Request) -> bool:
    return request.path.startswith(ADMIN_PREFIX)
