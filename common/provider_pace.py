"""The pace in force for a provider and the limits learned from its headers, as ``askq status`` tells
them: read from what the workers write (``worker.answering.gate`` and ``worker.answering.pacing``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

BY_CONFIG = "jobs.yaml"
BY_HEADERS = "headers"
MARGIN_SHOWN = "97%"
"""The share of a learned limit the workers pace at (``worker.answering.pacing.MARGIN``), as shown."""


def clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


@dataclass(frozen=True)
class Pace:
    """The paces the last admission used: per minute (0: none), and what set each."""

    requests_per_minute: int = 0
    requests_by: str | None = None
    tokens_per_minute: int = 0
    tokens_by: str | None = None
    token_burst_ms: int = 0

    @classmethod
    def parse(cls, raw: bytes | None) -> Pace | None:
        """The admission's ``"rpm by tpm by burst"``; None when absent or not of that form."""
        fields = raw.decode(errors="replace").split() if raw else []
        if len(fields) != 5 or not all(fields[index].isdigit() for index in (0, 2, 4)):
            return None
        by = {BY_CONFIG: BY_CONFIG, BY_HEADERS: BY_HEADERS}
        return cls(int(fields[0]), by.get(fields[1]), int(fields[2]), by.get(fields[3]), int(fields[4]))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_per_minute": self.requests_per_minute or None,
            "requests_by": self.requests_by,
            "tokens_per_minute": self.tokens_per_minute or None,
            "tokens_by": self.tokens_by,
            "token_burst_s": self.token_burst_ms / 1000 if self.tokens_per_minute else None,
        }


@dataclass(frozen=True)
class Learned:
    """What the provider's ``x-ratelimit-*`` headers said (per minute), or that it sends none."""

    requests: int | None = None
    tokens: int | None = None
    none: bool = False
    since_ms: int | None = None

    @classmethod
    def parse(
        cls, requests: bytes | None, tokens: bytes | None, none: bytes | None, since: bytes | None
    ) -> Learned | None:
        if requests is None and tokens is None and none is None:
            return None
        return cls(_number(requests), _number(tokens), none == b"1", _number(since))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_per_minute": self.requests,
            "tokens_per_minute": self.tokens,
            "sends_none": self.none,
            "learned_at": self.since_ms / 1000 if self.since_ms else None,
        }


def pace_line(endpoint: str, pace: Pace, learned: Learned | None, wait_ms: int | None) -> str:
    """``askq paces its calls to HOST at 540 requests/min (provider.requests_per_minute in jobs.yaml)
    and 9,700 tokens/min (97% of the limit its x-ratelimit headers gave at 12:00:01): ...``"""
    since = clock(learned.since_ms) if learned is not None and learned.since_ms else "?"
    parts = []
    for per_minute, by, name in (
        (pace.requests_per_minute, pace.requests_by, "requests"),
        (pace.tokens_per_minute, pace.tokens_by, "tokens"),
    ):
        if not per_minute:
            continue
        why = (
            f"provider.{name}_per_minute in jobs.yaml"
            if by == BY_CONFIG
            else f"{MARGIN_SHOWN} of the limit its x-ratelimit headers gave at {since}"
        )
        parts.append(f"{per_minute:,} {name}/min ({why})")
    wait = f": a call asked now goes in {wait_ms / 1000:.1f} s" if wait_ms is not None else ""
    return f"askq paces its calls to {endpoint} at {' and '.join(parts)}{wait}"


def unpaced_line(endpoint: str, learned: Learned) -> str | None:
    """For a provider no pace applies to: that it sends no rate-limit headers, if so."""
    if not learned.none:
        return None
    since = f" (seen at {clock(learned.since_ms)})" if learned.since_ms else ""
    return f"{endpoint} sends no x-ratelimit headers{since}: askq paces it only as jobs.yaml sets"


def probing_line(endpoint: str) -> str:
    return f"askq is learning {endpoint}'s rate limits: one call goes first, the others wait for its headers"


def _number(raw: bytes | None) -> int | None:
    text = raw.decode(errors="replace") if raw is not None else ""
    return int(text) if text.isdigit() else None
