"""The provider's rate-limit headers, read defensively: they come from a server askq does not control.

OpenAI's form, which most OpenAI-compatible providers copy:

    x-ratelimit-limit-requests: 10000       x-ratelimit-limit-tokens: 2000000
    x-ratelimit-remaining-requests: 9999    x-ratelimit-remaining-tokens: 1999588
    x-ratelimit-reset-requests: 6ms         x-ratelimit-reset-tokens: 12ms

Limits are per minute; remaining is what is left now; reset is how long until that is full again,
as Go prints a duration (``250ms``, ``1.5s``, ``6m0s``, ``1h0m0s``) or as plain seconds. A value that is
not a plain number of the expected form, or outside the bounds below, is ignored as if absent: a
stray header must neither stall every worker nor let them past the limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LIMIT = 1_000_000_000
"""Larger limits per minute are not believed (no provider sells a billion requests a minute)."""
MAX_RESET_S = 3600.0
MAX_BURST_MS = 60_000
"""A bucket is taken to hold at most a minute of its limit, whatever its headers add up to."""
UNKNOWN_BURST_MS = 6_000
"""The bucket assumed when the headers give a token limit but not what is left of it and when it
is full: a tenth of a minute, small enough for any bucket of a per-minute limit."""
_MAX_VALUE_CHARS = 32
_INTEGER = re.compile(r"[0-9]{1,10}")
_SECONDS = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,9})?")
_GO_PART = re.compile(r"([0-9]{1,7}(?:\.[0-9]{1,9})?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class RateLimits:
    """What one response's headers said; each None when absent or unreadable."""

    requests: int | None = None
    """Requests per minute."""
    tokens: int | None = None
    """Tokens per minute."""
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_ms: int | None = None
    """Until the token bucket is full again: how far ahead the provider's own pace is booked."""

    @property
    def known(self) -> bool:
        """Whether the response carried a limit askq can pace from."""
        return self.requests is not None or self.tokens is not None

    @property
    def tokens_burst_ms(self) -> int | None:
        """The provider's token bucket as a time at its limit: what it admits at once. Read as
        ``remaining + reset * limit / 60``, the bucket's size; at most a minute."""
        if self.tokens is None:
            return None
        if self.remaining_tokens is None or self.reset_tokens_ms is None:
            return UNKNOWN_BURST_MS
        capacity = self.remaining_tokens + self.reset_tokens_ms * self.tokens / 60_000
        return min(round(capacity * 60_000 / self.tokens), MAX_BURST_MS)


NO_LIMITS = RateLimits()


def rate_limits(headers: Mapping[str, str]) -> RateLimits:
    """The rate limits ``headers`` give; ``NO_LIMITS`` when they give none."""
    requests = _integer(headers.get("x-ratelimit-limit-requests"), low=1)
    tokens = _integer(headers.get("x-ratelimit-limit-tokens"), low=1)
    if requests is None and tokens is None:
        return NO_LIMITS
    return RateLimits(
        requests=requests,
        tokens=tokens,
        remaining_requests=_integer(headers.get("x-ratelimit-remaining-requests"), low=0),
        remaining_tokens=_integer(headers.get("x-ratelimit-remaining-tokens"), low=0),
        reset_tokens_ms=_duration_ms(headers.get("x-ratelimit-reset-tokens")),
    )


def _integer(value: str | None, *, low: int) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= MAX_LIMIT else None


def _duration_ms(value: str | None) -> int | None:
    """A Go duration (``1m30.5s``) or plain seconds (``90.5``) in ms; None when neither or too long."""
    if value is None or len(value) > _MAX_VALUE_CHARS:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        parts = _GO_PART.findall(value)
        if not parts or "".join(number + unit for number, unit in parts) != value:
            return None
        seconds = sum(float(number) * _GO_UNITS_S[unit] for number, unit in parts)
    return round(seconds * 1000) if seconds <= MAX_RESET_S else None
