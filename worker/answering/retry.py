"""The retry policy: exponential backoff with jitter, never shorter than what the provider asks for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from common.config import RetryConfig
from common.errors import ProviderUnreachableError, RetryableProviderError

BeforeSleep = Callable[[RetryCallState], Awaitable[None]]


class ProviderAwareWait:
    """Backoff that honours ``Retry-After``: the longer of the two, so a 429 storm is not stampeded."""

    def __init__(self, policy: RetryConfig) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_wait_s, max=policy.max_wait_s, jitter=policy.jitter_s
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(error, "retry_after_s", None)
        return max(backoff, asked) if asked is not None else backoff


def retrying(policy: RetryConfig, before_sleep: BeforeSleep) -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=ProviderAwareWait(policy),
        retry=retry_if_exception(_spends_an_attempt),
        before_sleep=before_sleep,
        reraise=True,
    )


def _spends_an_attempt(error: BaseException) -> bool:
    """A retryable failure spends an attempt and is retried; a provider away is waited for inside the
    attempt (``worker.answering.outage``), so one that reaches here waited too long: it ends the job."""
    return isinstance(error, RetryableProviderError) and not isinstance(error, ProviderUnreachableError)
