"""When a late first byte means the server is queueing: the judgement behind fitting the load.

A server with fewer slots than the calls it is sent (llama.cpp, vLLM, Ollama) answers the others
later and sends them nothing meanwhile, not even headers. So a call whose first piece is late while
other calls to the same provider stream is waiting in the server's queue: it is not failing, and the
calls in flight should come down to what the server answers at once.

Late is judged against this process's own recent first bytes, so that a provider slow to begin every
answer (a reasoning model, a long prompt on a CPU) is not taken for a queueing one: a first byte is
late past ``LATE_FACTOR`` times the median of the recent ones, and never before ``MIN_LATE_S``. Only
first bytes that waited for no one count as usual: those of calls during whose wait no other call
ended (a queued call gets its first byte when a slot frees, so its wait says nothing of the
server's speed). A provider with many calls always ending (a large hosted one) seldom gets a
"usual", and is then never judged: fitting is for servers with few slots.
"""

from __future__ import annotations

import statistics
from collections import deque

MIN_LATE_S = 2.0
LATE_FACTOR = 4.0
RECENT = 32
"""First bytes remembered: the median of these is what "usual" means."""
KNOWN_AFTER = 1
"""First bytes that waited for no one, seen before any is judged late: until then, no "usual"."""
QUICK_FACTOR = 0.5
"""A first byte within this share of the late mark counts as quick (toward raising a limit)."""


class FirstBytes:
    """One process's record of how long first bytes take from one provider."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=RECENT)

    def late_after_s(self) -> float | None:
        """How long a first byte may take before it is late; None while too few were seen to tell."""
        if len(self._recent) < KNOWN_AFTER:
            return None
        return max(MIN_LATE_S, LATE_FACTOR * statistics.median(self._recent))

    def arrived(self, wait_s: float, *, alone: bool) -> bool:
        """A first byte came after ``wait_s``: True when it was quick. It is remembered as usual when it
        waited ``alone`` (no other call ended meanwhile) and was not late."""
        late_after = self.late_after_s()
        if alone and (late_after is None or wait_s < late_after):
            self._recent.append(wait_s)
        return late_after is None or wait_s <= QUICK_FACTOR * late_after

    @staticmethod
    def queueing(wait_s: float, late_after_s: float | None, flowing: int) -> bool:
        """Whether a call still waiting after ``wait_s`` is in the server's queue: late, while
        ``flowing`` other calls to the provider stream."""
        return late_after_s is not None and wait_s >= late_after_s and flowing > 0
