"""A provider that cannot be reached is a state shared by every worker, not a failed answer.

While a call is refused (the server is down, restarting, a DNS failure, a 503), every worker's jobs
wait for it, spending no attempt: the outage is held in Redis (``keys.provider_outage``) with the
time it began, as a 429 cooldown is. Each process lets one job at a time call (a probe), the others
wait with capped backoff or until that probe gets through; the first call that reaches the provider
ends the outage for every worker. A job waits at most ``provider.outage_wait_s`` from the outage's
beginning, then fails saying so.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import structlog

from common.errors import ProviderUnreachableError
from common.provider_pace import clock

log = structlog.get_logger(__name__)

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 5.0
"""Backoff of a job waiting for the provider: doubling from the first to this, jittered."""
HELD_FOR_S = 60.0
"""An outage nobody confirms (no failed call) for this long lapses: workers all gone, or it ended."""


@dataclass(frozen=True)
class Outage:
    since_ms: int
    """When the outage began (Redis time, ms)."""
    age_ms: int
    """How long it has held, as Redis's clock tells."""
    error: str
    """The last refusal, as askq words it."""

    def clock(self) -> str:
        return clock(self.since_ms)  # as askq status says it

    def too_long(self) -> ProviderUnreachableError:
        lasted = f"{self.age_ms / 1000:.0f} s (since {self.clock()})"
        return ProviderUnreachableError(f"the provider was unreachable for {lasted}: {self.error}")


def backoff_s(waits: int) -> float:
    """The ``waits``-th wait (from 0) of a job for the provider."""
    ceiling = min(FIRST_WAIT_S * 2**waits, MAX_WAIT_S)
    return random.uniform(ceiling / 2, ceiling)  # jitter, not a secret


class OutageWatch:
    """One process's part in an outage: its one probe, and saying once when it began and ended."""

    def __init__(self) -> None:
        self._probing = False
        self._reachable = asyncio.Event()
        self._logged_since: int | None = None
        self._seen_at = 0.0
        """When this process learned of the outage (monotonic): a call sent before may predate it."""
        self._ended_at = float("-inf")
        """When this process last saw an outage end (monotonic): a refusal of a call sent before
        belongs to that outage, not to a new one."""

    @property
    def seen(self) -> bool:
        """Whether this process knows of an outage: then a call that gets through ends it."""
        return self._logged_since is not None

    def saw(self, outage: Outage) -> None:
        if self._logged_since != outage.since_ms:
            self._logged_since = outage.since_ms
            self._seen_at = time.monotonic()
            self._reachable = asyncio.Event()
            log.warning(
                "provider unreachable since " + outage.clock() + "; jobs wait for it", error=outage.error
            )

    def proves_back(self, sent_at: float) -> bool:
        """Whether an answer to a call sent at ``sent_at`` (monotonic) shows the provider is back: the
        call was sent after this process knew of the outage (one sent before may have been answered
        before the server went away, its first piece read only now)."""
        return self.seen and sent_at >= self._seen_at

    def predates_end(self, sent_at: float) -> bool:
        """Whether a call sent at ``sent_at`` (monotonic) was sent before the last outage ended: its
        refusal is that outage's, reaching this job late; it must not begin another."""
        return sent_at < self._ended_at

    def take_probe(self) -> bool:
        """Whether this job calls now, to see if the provider is back: one at a time per process."""
        if self._probing:
            return False
        self._probing = True
        return True

    def end_probe(self) -> None:
        self._probing = False

    def ended(self, lasted_s: float | None) -> None:
        """A call got through: the outage (if any) is over; waiting jobs go at once."""
        if self._logged_since is None:
            return
        since = self._logged_since
        self._logged_since = None
        self._ended_at = time.monotonic()
        self._reachable.set()
        if lasted_s is None:
            lasted_s = max(time.time() - since / 1000, 0.0)
        log.info(f"provider reachable again after {lasted_s:.0f} s")

    async def wait(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a call of this process gets through meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._reachable.wait()
        except TimeoutError:
            pass
