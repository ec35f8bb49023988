"""Translate what the provider client raises into retryable or fatal ``ProviderError``s.

askq's transport (``worker.answering.transport``) already raises ``ProviderError``s saying what
happened (refused, DNS, TLS, no first byte, stalled, dropped); the openai client wraps them in an
``APIConnectionError``, so the cause chain is walked for one first."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from common.errors import (
    FatalProviderError,
    ProviderError,
    ProviderUnreachableError,
    RetryableProviderError,
    StreamBrokenError,
)
from common.secrets import redact_secrets
from worker.answering.overflow import context_overflow

RETRYABLE_STATUS = frozenset({408, 409, 429})
UNAVAILABLE = 503
"""The server says it is away (llama-server's "Loading model", a proxy with no upstream): unreachable."""


def translate(exc: BaseException) -> ProviderError:
    """Classify an exception raised while calling or reading the provider."""
    said = _provider_error_in(exc)
    if said is not None:
        return said
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc)
    if isinstance(exc, openai.APITimeoutError):
        return RetryableProviderError("provider request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableProviderError(f"cannot connect to the provider: {_cause(exc)}")
    if isinstance(exc, openai.APIError):
        # An error object inside a 200 stream: the provider failed mid-answer.
        return StreamBrokenError(f"provider error in stream: {redact_secrets(exc.message)}")
    if isinstance(exc, httpx2.TimeoutException):
        return RetryableProviderError("provider request timed out")
    if isinstance(exc, httpx2.HTTPError):
        return StreamBrokenError(f"stream broken: {type(exc).__name__}: {redact_secrets(str(exc))}")
    raise exc


def _provider_error_in(exc: BaseException) -> ProviderError | None:
    """The ``ProviderError`` that ``exc`` is or was caused by (the transport's, wrapped by openai)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; a cycle must not hang
        if seen is None:
            return None
        if isinstance(seen, ProviderError):
            return seen
        seen = seen.__cause__
    return None


def _from_status(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    overflow = context_overflow(status, exc.body)
    if overflow is not None:
        return overflow  # whatever the status (llama-server once sent 500): no attempt can fit it
    message = f"HTTP {status}: {_provider_message(exc)}"
    if status == 401:
        message += " (check OPENAI_API_KEY)"
    if status == UNAVAILABLE:
        return ProviderUnreachableError(
            message, status_code=status, retry_after_s=retry_after_s(exc.response)
        )
    if status in RETRYABLE_STATUS or status >= 500:
        return RetryableProviderError(message, status_code=status, retry_after_s=retry_after_s(exc.response))
    return FatalProviderError(message, status_code=status)


def _provider_message(exc: openai.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return redact_secrets(error["message"])
    return redact_secrets(exc.message)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return redact_secrets(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)


def retry_after_s(response: httpx2.Response) -> float | None:
    """The wait a 429 or 503 asks for: ``retry-after-ms`` first, then ``Retry-After`` in seconds."""
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare from LLM providers, and backoff still applies
        if 0 <= seconds <= 3600:
            return seconds
    return None
