"""The provider's x-ratelimit-* headers, read defensively: durations, garbage and huge values."""

from __future__ import annotations

import pytest

from worker.answering.rate_headers import NO_LIMITS, UNKNOWN_BURST_MS, RateLimits, rate_limits

OPENAI = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "600000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "99288",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "71ms",
}


def test_openai_s_headers_give_both_limits_and_the_bucket() -> None:
    """The simulator's example (a 10 s bucket of 600,000/min): limits, remaining, and a 10 s burst."""
    limits = rate_limits(OPENAI)
    assert limits == RateLimits(
        requests=10_000, tokens=600_000, remaining_requests=9999, remaining_tokens=99_288, reset_tokens_ms=71
    )
    assert limits.known
    assert limits.tokens_burst_ms == 10_000  # (99,288 + 0.071 s x 10,000/s) / 10,000/s, rounded


@pytest.mark.parametrize(
    ("reset", "ms"),
    [
        ("0s", 0),
        ("250ms", 250),
        ("8.64s", 8640),
        ("6m0s", 360_000),
        ("1m30.5s", 90_500),
        ("1h0m0s", 3_600_000),
        ("1.5", 1500),
        ("20", 20_000),
        ("500us", 0),
        (" 2s ", 2000),
        ("1h0m1s", None),  # past an hour: not believed
        ("2h", None),
        ("soon", None),
        ("-5s", None),
        ("1e9", None),
        ("5s5", None),
        ("s", None),
        ("", None),
        ("1" * 40 + "ms", None),
        ("Thu, 01 Jan 2099 00:00:00 GMT", None),
    ],
)
def test_reset_durations(reset: str, ms: int | None) -> None:
    """Go durations and plain seconds up to an hour are read; anything else is no reset at all."""
    assert rate_limits({**OPENAI, "x-ratelimit-reset-tokens": reset}).reset_tokens_ms == ms


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("600000", 600_000),
        (" 42 ", 42),
        ("1000000000", 1_000_000_000),
        ("1000000001", None),  # more than a billion a minute: not believed
        ("99999999999999999999", None),
        ("0", None),  # a limit of zero would stop everything: read as none
        ("-1", None),
        ("1.5", None),
        ("lots", None),
        ("", None),
        ("\x1b[31m5", None),
    ],
)
def test_limits_are_plain_positive_integers(value: str, read: int | None) -> None:
    """A token limit that is not a plain count between 1 and a billion is ignored."""
    assert rate_limits({**OPENAI, "x-ratelimit-limit-tokens": value}).tokens == read


def test_no_limit_headers_is_no_limits() -> None:
    """Remaining and reset alone, or nothing, give nothing to pace from."""
    assert rate_limits({}) == NO_LIMITS
    assert not rate_limits({"x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "1s"}).known
    assert rate_limits({"x-ratelimit-limit-tokens": "garbage"}) == NO_LIMITS


def test_requests_alone_are_enough() -> None:
    """A provider that limits requests only: known, with no token bucket."""
    limits = rate_limits({"x-ratelimit-limit-requests": "3000"})
    assert (limits.known, limits.requests, limits.tokens, limits.tokens_burst_ms) == (True, 3000, None, None)


def test_a_bucket_is_at_most_a_minute_and_guessed_small_when_unsaid() -> None:
    """OpenAI's 6m0s reset on a full minute's bucket is a minute; without remaining/reset, a tenth."""
    long = rate_limits({**OPENAI, "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"})
    assert long.tokens_burst_ms == 60_000
    unsaid = rate_limits({"x-ratelimit-limit-tokens": "600000"})
    assert unsaid.tokens_burst_ms == UNKNOWN_BURST_MS
