"""What the workers share about each provider, as ``askq status`` tells it: an outage, a fitted limit,
a cooldown a 429 asked for, the shared pace.

Written by the workers (``worker.answering.gate`` and ``worker.answering.in_flight``); the
endpoints that had any of them lately are listed in ``keys.PROVIDERS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from common import keys


def clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


@dataclass(frozen=True)
class ProviderState:
    endpoint: str
    unreachable_since_ms: int | None = None
    unreachable_error: str = ""
    in_flight_limit: int | None = None
    limit_reason: str = ""
    limit_since_ms: int | None = None
    cooldown_ms: int | None = None
    """Left of the hold-off the provider asked for (a 429's ``Retry-After``): no call goes before."""
    pace_wait_ms: int | None = None
    """Under ``provider.requests_per_minute``: how long an attempt asking now waits for its send time
    (0 when the pace has none booked ahead); None when no pace is in use."""

    def lines(self) -> list[str]:
        """One plain line for each state that holds."""
        found = []
        if self.cooldown_ms is not None:
            wait = f"{self.cooldown_ms / 1000:.1f} s"
            found.append(f"{self.endpoint} asked askq to hold off (429): calls wait {wait} more")
        if self.pace_wait_ms is not None:
            found.append(
                f"askq paces its calls to {self.endpoint} (provider.requests_per_minute): "
                f"a call asked now goes in {self.pace_wait_ms / 1000:.1f} s"
            )
        if self.unreachable_since_ms is not None:
            since = clock(self.unreachable_since_ms)
            found.append(f"provider unreachable since {since} ({self.unreachable_error})")
        if self.in_flight_limit is not None:
            since = f", since {clock(self.limit_since_ms)}" if self.limit_since_ms else ""
            found.append(
                f"askq keeps {self.in_flight_limit} call{'s' if self.in_flight_limit != 1 else ''} in "
                f"flight to {self.endpoint}: {self.limit_reason}{since}"
            )
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "unreachable_since": self.unreachable_since_ms / 1000 if self.unreachable_since_ms else None,
            "unreachable_error": self.unreachable_error or None,
            "in_flight_limit": self.in_flight_limit,
            "in_flight_limit_reason": self.limit_reason or None,
            "in_flight_limit_since": self.limit_since_ms / 1000 if self.limit_since_ms else None,
            "cooldown_s": self.cooldown_ms / 1000 if self.cooldown_ms is not None else None,
            "pace_wait_s": self.pace_wait_ms / 1000 if self.pace_wait_ms is not None else None,
        }


async def provider_states(redis: Redis) -> list[ProviderState]:
    """The providers with an outage, an in-flight limit, a cooldown or a pace now, by endpoint."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.PROVIDERS)
        [members] = await pipe.execute()
    endpoints = sorted(member.decode() for member in members)
    if not endpoints:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()  # the pace's send times are on Redis's clock
        for endpoint in endpoints:
            pipe.hmget(keys.provider_outage(endpoint), ["since_ms", "error"])
            pipe.hmget(keys.provider_in_flight_limit(endpoint), ["limit", "reason", "since_ms"])
            pipe.pttl(keys.provider_cooldown(endpoint))
            pipe.get(keys.provider_pace(endpoint))
        (seconds, micros), *replies = await pipe.execute()
    now_ms = seconds * 1000 + micros // 1000
    states = []
    for index, endpoint in enumerate(endpoints):
        state = _state(endpoint, replies[4 * index : 4 * index + 4], now_ms)
        if state != ProviderState(endpoint):
            states.append(state)
    return states


def _state(endpoint: str, replies: list[Any], now_ms: int) -> ProviderState:
    (since, error), (limit, reason, limit_since), cooldown_ms, pace = replies
    return ProviderState(
        endpoint,
        unreachable_since_ms=int(since) if since is not None else None,
        unreachable_error=(error or b"").decode(),
        in_flight_limit=int(limit) if limit is not None else None,
        limit_reason=(reason or b"").decode(),
        limit_since_ms=int(limit_since) if limit_since is not None else None,
        cooldown_ms=cooldown_ms if cooldown_ms > 0 else None,
        pace_wait_ms=max(0, round(float(pace)) - now_ms) if pace is not None else None,
    )
