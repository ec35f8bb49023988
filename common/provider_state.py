"""What the workers share about each provider, as ``askq status`` tells it: an outage, a fitted limit.

Written by the workers (``worker.answering.gate`` and ``worker.answering.in_flight``); the
endpoints that had either lately are listed in ``keys.PROVIDERS``.
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

    def lines(self) -> list[str]:
        """One plain line for each state that holds."""
        found = []
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
        }


async def provider_states(redis: Redis) -> list[ProviderState]:
    """The providers with an outage or an in-flight limit now, by endpoint."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.PROVIDERS)
        [members] = await pipe.execute()
    endpoints = sorted(member.decode() for member in members)
    if not endpoints:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for endpoint in endpoints:
            pipe.hmget(keys.provider_outage(endpoint), ["since_ms", "error"])
            pipe.hmget(keys.provider_in_flight_limit(endpoint), ["limit", "reason", "since_ms"])
        replies = await pipe.execute()
    states = []
    for index, endpoint in enumerate(endpoints):
        (since, error), (limit, reason, limit_since) = replies[2 * index], replies[2 * index + 1]
        if since is None and limit is None:
            continue
        states.append(
            ProviderState(
                endpoint,
                unreachable_since_ms=int(since) if since is not None else None,
                unreachable_error=(error or b"").decode(),
                in_flight_limit=int(limit) if limit is not None else None,
                limit_reason=(reason or b"").decode(),
                limit_since_ms=int(limit_since) if limit_since is not None else None,
            )
        )
    return states
