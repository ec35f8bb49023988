"""What the provider gate answers an attempt (``Admission``), and what one worker process remembers of
it between attempts (``GateMemory``): see ``worker.answering.gate``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from worker.answering.in_flight import InFlight
from worker.answering.outage import Outage, OutageWatch
from worker.answering.pacing import Pacing

OPEN_FOR_S = 0.05
"""How long a process admits unpaced attempts on its last reading of an open gate. At 200 jobs a
second, a reading per attempt was a round trip inside the slot each time."""
MAX_REMEMBERED = 10_000
"""Gates (batch and provider pairs) one process remembers before it starts again from none."""


@dataclass(frozen=True)
class Admission:
    cooldown_s: float = 0.0
    """The provider asked every client to hold off this long: wait, then ask again."""
    send_in_s: float = 0.0
    """This attempt's reserved place in the pace: wait this long, then call."""
    outage: Outage | None = None
    """The provider cannot be reached: wait for it (or, as this process's probe, call to see)."""
    limit: int | None = None
    """The shared in-flight limit in force, if any."""
    place: str | None = None
    """This attempt's place under ``limit``: give it back when the call ends."""
    used: int = 0
    """Places taken under ``limit``, this one included."""
    reserved: int = 0
    """Tokens this attempt took of the token pace: what its end settles."""
    per_token_ms: float = 0.0
    """The token pace's ms per token when they were taken."""
    probe: str | None = None
    """This attempt's call id when it is the one sent to learn the provider's rate limits."""
    learning: bool = False
    """Another attempt is learning the provider's rate limits: wait for its answer, then ask again."""
    paced: bool = False
    """A pace is in force: every attempt must ask (an open reading is not remembered)."""

    @property
    def full(self) -> bool:
        """Every place under the limit is taken: wait for one, then ask again."""
        return self.limit is not None and self.place is None


class GateMemory:
    """One worker process's recent readings of open gates, shared by its jobs."""

    def __init__(self, open_for_s: float = OPEN_FOR_S) -> None:
        self._open_for_s = open_for_s
        self.outage = OutageWatch()
        self.in_flight = InFlight()
        self.pacing = Pacing()
        self._open_until: dict[tuple[str, str, bool], float] = {}
        self.generation = 0
        """Counts this process's refusals: a reading sent before one is too old to remember."""

    def is_open(self, batch: str, endpoint: str, reserving: bool = False) -> bool:
        """``reserving``: for a chat call, which learned limits may pace where an embeddings call's do not."""
        until = self._open_until.get((batch, endpoint, reserving))
        return until is not None and time.monotonic() < until

    def saw_open(self, batch: str, endpoint: str, generation: int, reserving: bool = False) -> None:
        """Remember a reading sent at ``generation``, unless a refusal has come since."""
        if generation != self.generation:
            return
        if len(self._open_until) >= MAX_REMEMBERED:
            self._open_until.clear()
        self._open_until[(batch, endpoint, reserving)] = time.monotonic() + self._open_for_s

    def forget(self) -> None:
        self.generation += 1
        self._open_until.clear()
