"""Token bucket behind the `tpm_limit` setting, counted as providers count: a request takes its prompt's
tokens plus the completion tokens it may use when it is admitted, and gets back the part it did not use
when its answer ends.

The bucket holds `tpm_limit x tpm_window_s / 60` tokens and refills continuously at `tpm_limit / 60`
per second: a short window enforces the per-minute limit over a few seconds, as providers do.
"""

from __future__ import annotations

import math

MINUTE_S = 60.0


class TokenBucket:
    """The limit and its window are passed per call because settings change live; the bucket starts
    full the first time a limit is used and after `clear` (`/_sim/reset`)."""

    def __init__(self) -> None:
        self._level: float | None = None  # None: full, whatever the capacity turns out to be
        self._at = 0.0
        self.epoch = 0
        """Bumped by `clear`: tokens admitted before a reset are not given back after it."""

    def level(self, now: float, tpm: int, window_s: float) -> float:
        """Tokens available now (negative after an answer used more than it took)."""
        capacity = tpm * window_s / MINUTE_S
        if self._level is None:
            level = capacity
        else:
            level = min(capacity, self._level + (now - self._at) * tpm / MINUTE_S)
        self._level, self._at = level, now
        return level

    def wait_for(self, now: float, tpm: int, window_s: float, tokens: int) -> float:
        """Seconds until `tokens` fit (0: they fit now; infinite: more than the bucket holds)."""
        if tokens > tpm * window_s / MINUTE_S:
            return math.inf
        missing = tokens - self.level(now, tpm, window_s)
        return max(0.0, missing * MINUTE_S / tpm)

    def take(self, now: float, tpm: int, window_s: float, tokens: int) -> None:
        """Take `tokens` (negative: give them back), whether or not they fit."""
        self._level = self.level(now, tpm, window_s) - tokens

    @staticmethod
    def seconds_to_fill(level: float, tpm: int, window_s: float) -> float:
        """Seconds until a bucket at `level` is full again."""
        return max(0.0, (tpm * window_s / MINUTE_S - level) * MINUTE_S / tpm)

    def clear(self) -> None:
        self._level = None
        self.epoch += 1
