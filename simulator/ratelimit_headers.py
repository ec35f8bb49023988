"""OpenAI's rate-limit headers, for the limits that are set (`rpm_limit`, `tpm_limit`).

    x-ratelimit-limit-requests: 5000        x-ratelimit-limit-tokens: 160000
    x-ratelimit-remaining-requests: 4999    x-ratelimit-remaining-tokens: 159976
    x-ratelimit-reset-requests: 12ms        x-ratelimit-reset-tokens: 6m0s

Limits are per minute; remaining is what the window (requests) or the bucket (tokens) still admits;
reset is how long until the oldest request leaves the window, and until the bucket is full again.
Durations are written as Go writes them (OpenAI's servers do): `250ms`, `1.5s`, `6m0s`, `1h0m0s`.
"""

from __future__ import annotations

import math

from .settings import SimulatorSettings
from .state import SimState


def rate_limit_headers(state: SimState, settings: SimulatorSettings, now: float) -> dict[str, str]:
    """The headers for an answer or a 429 at `now` (loop clock); empty when no limit is set or
    `ratelimit_headers` is off. Only the limited dimensions are named: a provider that sent
    `limit-tokens: 0` for "no limit" would be read as a limit of zero."""
    headers: dict[str, str] = {}
    if not settings.ratelimit_headers:
        return headers
    if settings.rpm_limit:
        remaining, reset = state.limiter.remaining(now, settings.rpm_limit, settings.rpm_window_s)
        headers["x-ratelimit-limit-requests"] = str(settings.rpm_limit)
        headers["x-ratelimit-remaining-requests"] = str(remaining)
        headers["x-ratelimit-reset-requests"] = go_duration(reset)
    if settings.tpm_limit:
        tpm, window_s = settings.tpm_limit, settings.tpm_window_s
        level = state.bucket.level(now, tpm, window_s)
        headers["x-ratelimit-limit-tokens"] = str(tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(level)))
        headers["x-ratelimit-reset-tokens"] = go_duration(state.bucket.seconds_to_fill(level, tpm, window_s))
    return headers


def go_duration(seconds: float) -> str:
    """`seconds` as Go's `time.Duration` prints it, to the millisecond: `0s`, `250ms`, `8.64s`, `6m0s`."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
