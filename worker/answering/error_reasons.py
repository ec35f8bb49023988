"""Why an attempt or a job failed, as one of a few short labels: what a batch counts its errors by.

The batch's record keeps one counter per label (``record.ERRORS_RETRIED``, ``record.ERRORS_FAILED``),
so the labels must be few whatever the provider says: an HTTP status (``HTTP 429``), or the kind of
failure, never a provider's own words.
"""

from __future__ import annotations

from common.errors import (
    BatchHaltedError,
    ContextOverflowError,
    FatalProviderError,
    FirstByteTimeoutError,
    KnowledgeError,
    NotFoundError,
    ProviderError,
    ProviderUnreachableError,
    StreamBrokenError,
    StreamCutError,
    StreamStalledError,
)

TIMEOUT = "timeout"
"""The job ran past ``limits.job_timeout_s``."""
LOST = "worker lost"
"""Its runs were lost (worker killed or stopped) ``limits.max_job_runs`` times."""
INVALID_PAYLOAD = "invalid payload"
"""A worker refused to run it (``worker.queue.rejections``)."""
INTERNAL = "internal error"

_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    # Most specific first: a halt carries the 401 it copies, an overflow the status it came with.
    (BatchHaltedError, "not sent: batch halted"),
    (ContextOverflowError, "context overflow"),
    (FirstByteTimeoutError, "no first byte"),
    (StreamStalledError, "stream stalled"),
    (StreamCutError, "stream broken"),
    (StreamBrokenError, "stream broken"),
)


def error_reason(error: BaseException) -> str:
    """The label of a failed attempt's or job's ``error``."""
    for kind, label in _KINDS:
        if isinstance(error, kind):
            return label
    if isinstance(error, ProviderError):
        return _provider_reason(error)
    if isinstance(error, TimeoutError):
        return TIMEOUT
    if isinstance(error, KnowledgeError):
        return "knowledge base"
    if isinstance(error, NotFoundError):
        return "not found"
    return INTERNAL


def _provider_reason(error: ProviderError) -> str:
    if error.status_code is not None:
        return f"HTTP {error.status_code}"  # a number of three digits: a few hundred labels at most
    if isinstance(error, ProviderUnreachableError):
        return "unreachable"
    if isinstance(error, FatalProviderError):
        return "TLS"  # the one fatal error without a status: a certificate refused
    # Reset or timed out before a stream began, a TLS handshake that failed.
    return "connection"
