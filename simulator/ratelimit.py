"""Sliding one-minute request window behind the `rpm_limit` setting."""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class SlidingWindowLimiter:
    """Admission times of the last minute; the limit is passed per call because settings change live."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def acquire(self, now: float, limit: int) -> float | None:
        """Admit and return None, or refuse and return the seconds until a slot frees."""
        if limit <= 0:
            return None
        cutoff = now - WINDOW_S
        while self._admitted and self._admitted[0] <= cutoff:
            self._admitted.popleft()
        excess = len(self._admitted) - limit
        if excess >= 0:
            # After a runtime decrease of the limit, several admissions must expire before a slot frees.
            return self._admitted[excess] + WINDOW_S - now
        self._admitted.append(now)
        return None

    def clear(self) -> None:
        self._admitted.clear()
