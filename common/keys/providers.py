"""The provider gate, shared by every worker, per endpoint (``host:port``): the cooldown a 429 asked
for, the request pace, an outage, the calls in flight and their limit."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "PROVIDERS",
    "provider_cooldown",
    "provider_in_flight_calls",
    "provider_in_flight_limit",
    "provider_outage",
    "provider_pace",
]


def provider_cooldown(endpoint: str) -> str:
    """Set for as long as the provider at ``endpoint`` asked (429 Retry-After): every worker holds off."""
    return f"{PREFIX}:cooldown:{endpoint}"


def provider_pace(endpoint: str) -> str:
    """The next free send time (ms) under ``provider.requests_per_minute``, shared by every worker."""
    return f"{PREFIX}:pace:{endpoint}"


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
