"""The transport's kept-alive connections: which were used before, and which servers close them anyway.

A server may close a connection right after its response while the response said it would keep it
open (llama-server sends ``Keep-Alive: timeout=5, max=100`` and closes). A client that picks such a
connection before it has read the server's FIN writes its next request into a dead socket. The pool
tells the transport whether a failed request went out on a reused connection (so it is sent again at
once on a fresh one, spending no attempt), and notices servers that do this habitually: their
connections are then closed after each response instead of kept (``Connection: close`` from a server
already is: aiohttp's parser marks such a connection, and the connector does not keep it).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from contextvars import ContextVar
from typing import Any

import aiohttp
import structlog
from aiohttp import ClientRequest, ClientTimeout
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

log = structlog.get_logger(__name__)

CLOSED_SOON_S = 1.0
"""A kept-alive connection the server closes this soon after a response, unused, was not kept alive:
servers that honour keep-alive keep an idle connection for seconds (uvicorn 5, nginx 75)."""
CLOSES_TO_LEARN = 3
"""Early closes of one server's connections before they are no longer kept (one can be chance)."""

_last: ContextVar[tuple[ResponseHandler, int] | None] = ContextVar("askq_last_connection", default=None)
"""Set by ``KeptAlivePool.connect`` in the task sending a request: its connection, and which use of
that connection the request is (1: a new connection). Read by the transport once the request is sent
or has failed; a context variable, since aiohttp hands neither back on a failure."""


def last_connection() -> tuple[ResponseHandler, int] | None:
    """The connection this task's last request through a ``KeptAlivePool`` went out on, and its use."""
    return _last.get()


class KeptAlivePool(aiohttp.TCPConnector):
    """A ``TCPConnector`` that counts the uses of its connections, and learns which servers close
    connections they advertised as kept alive."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._uses: weakref.WeakKeyDictionary[ResponseHandler, int] = weakref.WeakKeyDictionary()
        self._ended: weakref.WeakKeyDictionary[ResponseHandler, float] = weakref.WeakKeyDictionary()
        """When each connection's last response ended (loop time)."""
        self._idle: dict[ResponseHandler, tuple[str, float]] = {}
        """Connections whose first response ended, until they are closed: origin, time it ended."""
        self._early_closes: Counter[str] = Counter()
        self.closers: set[str] = set()
        """Origins (``host:port``) that close connections after each response: none is kept for them."""
        self._closing = False

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: ClientTimeout,  # noqa: ASYNC109  # aiohttp's signature
    ) -> Connection:
        """A connection from the pool or a new one, counted; remembered for this task."""
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if protocol is not None:
            use = self._uses.get(protocol, 0) + 1
            self._uses[protocol] = use
            _last.set((protocol, use))
        return connection

    def response_ended(self, protocol: ResponseHandler, use: int, origin: str, *, kept: bool) -> None:
        """The ``use``-th response on ``protocol`` was read whole; ``kept``: the server did not say close.

        Only a connection's first response is watched for a close: a server that closes connections
        after their responses closes them after the first, and a future and a callback for every
        response would cost CPU for nothing (a reused connection that turns out dead is counted by
        ``dead_on_reuse``)."""
        loop = asyncio.get_running_loop()
        self._ended[protocol] = loop.time()
        if not kept or use != 1 or self._uses.get(protocol) != use:
            return  # said it would close, or already carrying another request
        closed = protocol.closed if protocol.is_connected() else None
        if closed is None:  # already gone with the response's last bytes
            self.closed_early(origin)
            return
        self._idle[protocol] = (origin, loop.time())
        closed.add_done_callback(lambda future: self._on_closed(protocol, future))

    def dead_on_reuse(self, protocol: ResponseHandler, origin: str) -> None:
        """A request failed on ``protocol``, reused, before a byte of response: the server had closed it.

        Counted as the server's habit only when its last response had just ended: an idle connection
        a server closes after its own keep-alive time is no sign of one."""
        ended_at = self._ended.get(protocol)
        if ended_at is not None and asyncio.get_running_loop().time() - ended_at <= CLOSED_SOON_S:
            self.closed_early(origin)

    def _on_closed(self, protocol: ResponseHandler, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # read, so that asyncio does not report it as never retrieved
        watched = self._idle.pop(protocol, None)
        if watched is None or self._closing:
            return
        origin, ended_at = watched
        if self._uses.get(protocol) != 1:
            return  # used again since: its own request's end closed it, not the server's habit
        if asyncio.get_running_loop().time() - ended_at <= CLOSED_SOON_S:
            self.closed_early(origin)

    def closed_early(self, origin: str) -> None:
        """One more connection to ``origin`` closed by the server right after a response it kept alive."""
        if origin in self.closers:
            return
        self._early_closes[origin] += 1
        if self._early_closes[origin] >= CLOSES_TO_LEARN:
            self.closers.add(origin)
            log.warning(
                f"the provider at {origin} closes each connection after its response although it says "
                "keep-alive; askq opens a new connection for each request to it"
            )

    async def close(self, *, abort_ssl: bool = False) -> None:
        self._closing = True
        self._idle.clear()
        await super().close(abort_ssl=abort_ssl)
