"""What the workers share about each provider, as ``askq status`` tells it: an outage, a fitted limit,
a cooldown a 429 asked for, the shared paces and what set them, the limits learned from its headers.

Written by the workers (``worker.answering.gate``, ``worker.answering.in_flight`` and
``worker.answering.pacing``); the endpoints that had any of them lately are listed in ``keys.PROVIDERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.provider_pace import Learned, Pace, clock, pace_line, probing_line, unpaced_line


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
    """Under a pace (of requests or tokens): how long an attempt asking now waits for its send time
    (0 when the pace has none booked ahead); None when no pace is in use."""
    pace: Pace | None = None
    """The paces the last admission used, and what set each (jobs.yaml or the headers)."""
    learned: Learned | None = None
    """What the provider's rate-limit headers said, or that it sends none."""
    learning: bool = False
    """One call is out to learn the provider's rate limits; the others wait for its headers."""

    @property
    def holds(self) -> bool:
        """Whether anything holds calls to it back or paces them now. That it sends no rate-limit
        headers alone is not listed (nothing paces it), only said beside what holds."""
        unlearned = replace(self, learned=None)
        return unlearned != ProviderState(self.endpoint)

    def lines(self) -> list[str]:
        """One plain line for each state that holds."""
        found = []
        if self.cooldown_ms is not None:
            wait = f"{self.cooldown_ms / 1000:.1f} s"
            found.append(f"{self.endpoint} asked askq to hold off (429): calls wait {wait} more")
        found += self._pace_lines()
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
            "pace": self.pace.to_json() if self.pace is not None else None,
            "rate_limits": self.learned.to_json() if self.learned is not None else None,
            "learning_rate_limits": self.learning,
        }

    def _pace_lines(self) -> list[str]:
        if self.learning:
            return [probing_line(self.endpoint)]
        if self.pace is not None:  # as the last admission used them (no wait: none booked ahead)
            return [pace_line(self.endpoint, self.pace, self.learned, self.pace_wait_ms)]
        if self.pace_wait_ms is not None:  # paced by a worker that does not say by what
            wait = f"{self.pace_wait_ms / 1000:.1f} s"
            return [f"askq paces its calls to {self.endpoint}: a call asked now goes in {wait}"]
        unpaced = unpaced_line(self.endpoint, self.learned) if self.learned is not None else None
        return [unpaced] if unpaced is not None else []


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
            pipe.get(keys.provider_token_pace(endpoint))
            pipe.hmget(keys.provider_rate_limits(endpoint), [*_LEARNED, "paced"])
            pipe.exists(keys.provider_probe(endpoint))
        (seconds, micros), *replies = await pipe.execute()
    now_ms = seconds * 1000 + micros // 1000
    states = []
    for index, endpoint in enumerate(endpoints):
        state = _state(endpoint, replies[_READS * index : _READS * (index + 1)], now_ms)
        if state.holds:
            states.append(state)
    return states


_LEARNED = ("requests", "tokens", "none", "since_ms")
_READS = 7
"""Replies per endpoint in ``provider_states``' second round trip."""


def _state(endpoint: str, replies: list[Any], now_ms: int) -> ProviderState:
    (since, error), (limit, reason, limit_since), cooldown_ms, pace, token_pace, rates, probing = replies
    paced = Pace.parse(rates[-1])
    learned = Learned.parse(*rates[:-1])
    return ProviderState(
        endpoint,
        unreachable_since_ms=int(since) if since is not None else None,
        unreachable_error=(error or b"").decode(),
        in_flight_limit=int(limit) if limit is not None else None,
        limit_reason=(reason or b"").decode(),
        limit_since_ms=int(limit_since) if limit_since is not None else None,
        cooldown_ms=cooldown_ms if cooldown_ms > 0 else None,
        pace_wait_ms=_wait_ms(pace, token_pace, paced, now_ms),
        pace=paced,
        learned=learned,
        learning=bool(probing)
        and (learned is None or not (learned.none or learned.requests or learned.tokens)),
    )


def _wait_ms(pace: bytes | None, token_pace: bytes | None, paced: Pace | None, now_ms: int) -> int | None:
    """How long a call asked now waits for its send time: the later of the request pace's next send
    and the token pace's, less the burst it lets go at once. None when neither is in use."""
    waits = []
    if pace is not None:
        waits.append(round(float(pace)) - now_ms)
    if token_pace is not None and paced is not None and paced.tokens_per_minute:
        waits.append(round(float(token_pace)) - paced.token_burst_ms - now_ms)
    return max(0, *waits) if waits else None
