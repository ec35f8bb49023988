"""The provider gate, shared by every worker, per endpoint (``host:port``): the cooldown a 429 asked
for, the request and token paces, the rate limits its headers gave, an outage, the calls in flight
and their limit."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "PROVIDERS",
    "provider_cooldown",
    "provider_in_flight_calls",
    "provider_in_flight_limit",
    "provider_outage",
    "provider_pace",
    "provider_probe",
    "provider_rate_limits",
    "provider_token_pace",
]


def provider_cooldown(endpoint: str) -> str:
    """Set for as long as the provider at ``endpoint`` asked (429 Retry-After): every worker holds off."""
    return f"{PREFIX}:cooldown:{endpoint}"


def provider_pace(endpoint: str) -> str:
    """The next free send time (ms) under ``provider.requests_per_minute``, shared by every worker."""
    return f"{PREFIX}:pace:{endpoint}"


def provider_token_pace(endpoint: str) -> str:
    """String: the theoretical arrival time (ms) of the token pace to ``endpoint``, shared by every
    worker (GCRA on Redis's clock): each call reserves its prompt estimate plus ``max_tokens`` at send
    and gives back what it did not use when its usage comes."""
    return f"{PREFIX}:pace:{endpoint}:tokens"


def provider_rate_limits(endpoint: str) -> str:
    """Hash of the limits the provider's ``x-ratelimit-*`` headers gave (``requests``, ``tokens``,
    ``tokens_burst_ms``, ``seen_ms``), or ``none`` when it sends no such headers: what askq paces
    from when jobs.yaml sets no limit. Expires an hour after it last changed or was seen."""
    return f"{PREFIX}:ratelimits:{endpoint}"


def provider_probe(endpoint: str) -> str:
    """String holding the id of the one call let through to learn the provider's rate limits from its
    answer's headers, while the others wait; it expires after 30 s, so a lost probe frees itself."""
    return f"{PREFIX}:probe:{endpoint}"


def provider_outage(endpoint: str) -> str:
    """Hash (``since_ms``, ``error``) held while the provider at ``endpoint`` cannot be reached: every
    worker's jobs wait, spending no attempt. The first call that reaches it deletes it."""
    return f"{PREFIX}:outage:{endpoint}"


def provider_in_flight_limit(endpoint: str) -> str:
    """Hash (``limit``, ``was``, ``reason``, ``since_ms``): the calls in flight to ``endpoint`` that every
    worker together keeps to, fitted to what the server answers at once. Absent: no limit but each
    worker's ``limits.concurrency``."""
    return f"{PREFIX}:in_flight:{endpoint}:limit"


def provider_in_flight_calls(endpoint: str) -> str:
    """Sorted set of the calls holding a place under the in-flight limit: call id -> expiry (ms), so a
    dead worker's places free themselves."""
    return f"{PREFIX}:in_flight:{endpoint}:calls"


PROVIDERS = f"{PREFIX}:providers"
"""Set of the endpoints that had an outage or an in-flight limit lately: where ``askq status`` looks."""
