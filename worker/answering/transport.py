"""askq's one seam to the network: an httpx2 transport over one aiohttp ``ClientSession``.

The openai client keeps what it does well (base URL, auth headers, status errors); this transport sends
its requests, faster than httpx's own stack (py-spy), and says what went wrong:

* three timeouts: ``connect_s`` to open a connection; ``first_byte_s`` for the first byte of an answer
  (the headers and the body's first chunk: a server with no free slot sends nothing while the request
  waits); ``stall_s`` between the body's chunks once it has begun;
* a request that failed on a reused connection before any byte of a response (the server had closed
  it) is sent again at once on a fresh connection: no attempt is spent on a dead kept-alive connection;
* failures become askq's provider errors (``transport_errors``), raised through the openai client
  (which wraps them in ``APIConnectionError``) or straight from the body's iterator.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx2
from aiohttp.client_proto import ResponseHandler

from common.errors import ProviderError
from worker.answering import transport_errors
from worker.answering.connection_pool import KeptAlivePool, last_connection
from worker.answering.transport_errors import ProviderTransportError

KEEPALIVE_S = 4.0
"""An idle connection is kept this long: under the 5 s that uvicorn (vLLM, LiteLLM) and llama-server
keep theirs, so that askq does not pick one the server is closing."""


@dataclass(frozen=True)
class Timeouts:
    connect_s: float
    first_byte_s: float
    stall_s: float


class AskqTransport(httpx2.AsyncBaseTransport):
    """Sends httpx2 requests through aiohttp; its session is made at the first request, in the loop."""

    def __init__(
        self,
        timeouts: Timeouts,
        *,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        self.timeouts = timeouts
        self._max_connections = max_connections
        self._ssl = ssl_context or httpx2.create_ssl_context()
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None
        self.pool: KeptAlivePool | None = None
        self.sent_again = 0
        """Requests sent again on a fresh connection after a reused one turned out dead."""

    def _client_timeout(self) -> aiohttp.ClientTimeout:
        # sock_read is the first byte's wait until the body begins; the body then sets stall_s.
        t = self.timeouts
        return aiohttp.ClientTimeout(
            total=None, connect=t.connect_s, sock_connect=t.connect_s, sock_read=t.first_byte_s
        )

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        # httpx decodes the body and keeps the cookies: aiohttp does neither a second time.
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._client_timeout(),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    def _main_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self.pool = KeptAlivePool(
                limit=self._max_connections, keepalive_timeout=KEEPALIVE_S, ssl=self._ssl
            )
            self._session = self._new_session(self.pool)
        return self._session

    def _fresh_session(self) -> aiohttp.ClientSession:
        """Where a request goes again after a dead kept-alive connection: every connection is new."""
        if self._fresh is None:
            self._fresh = self._new_session(aiohttp.TCPConnector(force_close=True, ssl=self._ssl))
        return self._fresh

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        session = self._main_session()
        try:
            response = await self._send(session, request, body)
        except aiohttp.ClientError as exc:
            connection = last_connection()
            if not _dead_kept_alive(exc, connection):
                error = self._before_response(exc, request)
                raise ProviderTransportError(error) from error
            # The server had closed the kept-alive connection: sent again, at once, on a new one.
            self.sent_again += 1
            if self.pool is not None and connection is not None:
                self.pool.dead_on_reuse(connection[0], _origin(request))
            session = self._fresh_session()
            try:
                response = await self._send(session, request, body)
            except aiohttp.ClientError as again:
                error = self._before_response(again, request)
                raise ProviderTransportError(error) from error
        return self._response(request, response, None if session is self._fresh else last_connection())

    async def _send(
        self, session: aiohttp.ClientSession, request: httpx2.Request, body: bytes
    ) -> aiohttp.ClientResponse:
        headers = request.headers
        if "transfer-encoding" in headers:  # the body is read whole: aiohttp sends its length
            headers = httpx2.Headers(headers)
            del headers["transfer-encoding"]
        return await session.request(
            request.method,
            str(request.url),
            headers=headers,
            data=body or None,
            allow_redirects=False,
            compress=False,
            proxy=self._proxy,
        )

    def _before_response(self, exc: aiohttp.ClientError, request: httpx2.Request) -> ProviderError:
        t = self.timeouts
        error = transport_errors.before_response(exc, _origin(request), t.connect_s, t.first_byte_s)
        error.__cause__ = exc
        return error

    def _response(
        self,
        request: httpx2.Request,
        response: aiohttp.ClientResponse,
        pooled: tuple[ResponseHandler, int] | None,
    ) -> httpx2.Response:
        """``pooled``: the pool's connection that carried the request, and which use of it."""
        pool = self.pool
        if pooled is not None and pool is not None and pool.closers and _origin(request) in pool.closers:
            pooled[0].force_close()  # a server that closes it anyway: not kept, so never written into dead
            pooled = None
        stream = _Body(self, request, response, pooled)
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=stream,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()


class _Body(httpx2.AsyncByteStream):
    """A response body as it arrives; the first chunk switches the wait from first byte to stall."""

    def __init__(
        self,
        transport: AskqTransport,
        request: httpx2.Request,
        response: aiohttp.ClientResponse,
        pooled: tuple[ResponseHandler, int] | None,
    ) -> None:
        self._transport = transport
        self._request = request
        self._response = response
        self._pooled = pooled

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        received = 0
        try:
            chunk = await content.readany()
            connection = self._response.connection
            if chunk and connection is not None and connection.protocol is not None:
                connection.protocol.read_timeout = self._transport.timeouts.stall_s
                connection.protocol.start_timeout()  # from now: the stall, not the first byte
            while chunk:
                received += len(chunk)
                yield chunk
                chunk = await content.readany()
        except aiohttp.ClientError as exc:
            t = self._transport.timeouts
            error = transport_errors.mid_stream(exc, received, t.first_byte_s, t.stall_s)
            error.__cause__ = exc
            raise ProviderTransportError(error) from error

    async def aclose(self) -> None:
        # A reader may stop at the stream's own end ([DONE]) before the body's: its bytes are all in.
        whole = self._response.content.is_eof()
        self._response.release()
        pool, pooled = self._transport.pool, self._pooled
        if whole and pooled is not None and pool is not None:
            protocol, use = pooled
            origin = _origin(self._request) if use == 1 else ""  # only a first response is watched
            pool.response_ended(protocol, use, origin, kept=not _says_close(self._response))


def _dead_kept_alive(exc: aiohttp.ClientError, connection: tuple[ResponseHandler, int] | None) -> bool:
    """A reused connection that failed before any byte of a response: the server had closed it."""
    return (
        isinstance(exc, aiohttp.ClientConnectionError)
        and not isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerTimeoutError))
        and connection is not None
        and connection[1] > 1
    )


def _says_close(response: aiohttp.ClientResponse) -> bool:
    """Whether the server said it would close the connection after this response (HTTP/1.1 rules)."""
    said = response.headers.get(aiohttp.hdrs.CONNECTION, "").lower()
    if response.version is not None and response.version < aiohttp.HttpVersion11:
        return "keep-alive" not in said
    return "close" in said


def _origin(request: httpx2.Request) -> str:
    url = request.url
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
