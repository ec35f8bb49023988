"""Sliding request window behind the `rpm_limit` setting.

The window is a minute by default. Providers also enforce a per-minute limit over shorter periods
(60,000 RPM as 1,000 requests a second), which `rpm_window_s` reproduces: the window holds
`rpm_limit x rpm_window_s / 60` requests.
"""

from __future__ import annotations

from collections import deque

MINUTE_S = 60.0


class SlidingWindowLimiter:
    """Admission times of the last minute; the limit is passed per call because settings change live."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def acquire(self, now: float, rpm: int, window_s: float = MINUTE_S) -> float | None:
        """Admit and return None, or refuse and return the seconds until a slot frees."""
        if rpm <= 0:
            return None
        limit = self._expire(now, rpm, window_s)
        excess = len(self._admitted) - limit
        if excess >= 0:
            # After a runtime decrease of the limit, several admissions must expire before a slot frees.
            return self._admitted[excess] + window_s - now
        self._admitted.append(now)
        return None

    def remaining(self, now: float, rpm: int, window_s: float) -> tuple[int, float]:
        """Requests the window still admits, and the seconds until its oldest admission leaves it."""
        limit = self._expire(now, rpm, window_s)
        reset = self._admitted[0] + window_s - now if self._admitted else 0.0
        return max(0, limit - len(self._admitted)), reset

    def _expire(self, now: float, rpm: int, window_s: float) -> int:
        """Drop admissions older than the window; returns how many the window holds."""
        cutoff = now - window_s
        while self._admitted and self._admitted[0] <= cutoff:
            self._admitted.popleft()
        return max(1, round(rpm * window_s / MINUTE_S))

    def clear(self) -> None:
        self._admitted.clear()
