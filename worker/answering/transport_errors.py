"""What a failed provider connection is called: aiohttp's exceptions as askq's provider errors, each
in one line saying what happened (refused, DNS, TLS, no first byte, stalled, dropped).

The transport raises a ``ProviderTransportError`` caused by each, an httpx2 ``TransportError``: what the
openai client and httpx expect of a transport (openai wraps it in ``APIConnectionError``), with the
provider error as its cause for ``provider_errors.translate`` to find.
"""

from __future__ import annotations

import errno

import aiohttp
import httpx2

from common.errors import (
    FatalProviderError,
    FirstByteTimeoutError,
    ProviderError,
    ProviderUnreachableError,
    RetryableProviderError,
    StreamBrokenError,
    StreamStalledError,
)
from common.secrets import redact_secrets

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "no route to the host",
    errno.ENETUNREACH: "the network is unreachable",
    errno.ETIMEDOUT: "the connection timed out",
}


class ProviderTransportError(httpx2.TransportError):
    """A provider error, as an httpx2 transport raises it: ``raise ProviderTransportError(e) from e``."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


def seconds(value: float) -> str:
    return f"{value:g} s"


def before_response(
    exc: aiohttp.ClientError, where: str, connect_s: float, first_byte_s: float
) -> ProviderError:
    """A request that failed before any byte of a response: ``where`` is the provider's ``host:port``."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ProviderUnreachableError(
            f"cannot reach the provider at {where}: no connection within {seconds(connect_s)}"
        )
    if isinstance(exc, aiohttp.ServerTimeoutError):  # sock_read before the headers
        return FirstByteTimeoutError(f"no first byte from the provider within {seconds(first_byte_s)}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return FatalProviderError(
            f"the TLS certificate of {where} is not trusted: {_reason(exc.certificate_error)}"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return RetryableProviderError(f"the TLS handshake with {where} failed: {_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProviderUnreachableError(
            f"cannot reach the provider: DNS lookup of {exc.host} failed ({_reason(exc.os_error)})"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderUnreachableError(f"cannot reach the provider at {where}: {_os_words(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectionError):
        # On a fresh connection (a reused one was already sent again): the server went away.
        return ProviderUnreachableError(
            f"cannot reach the provider at {where}: it closed the connection before answering"
        )
    return RetryableProviderError(f"the provider's response could not be read: {_reason(exc)}")


def mid_stream(exc: aiohttp.ClientError, received: int, first_byte_s: float, stall_s: float) -> ProviderError:
    """A response body that failed after ``received`` bytes of it."""
    if isinstance(exc, aiohttp.ServerTimeoutError):
        if received == 0:
            return FirstByteTimeoutError(f"no first byte from the provider within {seconds(first_byte_s)}")
        return StreamStalledError(f"the stream stalled mid-answer: no chunk for {seconds(stall_s)}")
    if received == 0:
        # Headers, then the end: the server went away before a byte of answer (llama-server sends its
        # headers when a slot takes the request). Nothing was answered, so no attempt is spent on it.
        return ProviderUnreachableError(
            "the provider closed the connection before answering (after its headers)"
        )
    return StreamBrokenError(f"the connection dropped mid-stream, {received} bytes into the response")


def _os_words(error: OSError) -> str:
    if error.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[error.errno]
    return _reason(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return redact_secrets(text)
