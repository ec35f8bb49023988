"""A batch's latency percentiles, reading only the latencies added since this process last looked.

A batch's latency list (``keys.batch_latencies``) only grows: a worker appends one value as each job
ends, and only deleting the batch removes it. Read whole, a finished batch of 1,000,000 jobs cost
every status about 150 ms (the reply's million strings and their parsing), which ``GET
/api/batches/{batch}`` pays on each poll. So a process keeps the values it has parsed of a few recent
batches and reads the list from where it left off; a batch deleted and submitted again under the same
name is told apart by its ``created_at``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

MAX_BATCHES = 8
"""Batches whose values a process keeps (8 bytes a finished job each): the least recently asked go."""


@dataclass
class _Seen:
    created_at: bytes
    values: np.ndarray = field(default_factory=lambda: np.empty(1024, dtype=np.float64))
    """The values read so far in their first ``count`` places; room doubles as it fills."""
    count: int = 0
    percentiles: tuple[float, float] | None = None
    """p50 and p95 of the values when ``percentiles_of`` of them were read."""
    percentiles_of: int = 0

    def add(self, start: int, tail: list[bytes]) -> None:
        """``tail``: the list from index ``start`` on; what this holds already is skipped, so two status
        calls that read the same tail at once add it once."""
        new = tail[self.count - start :]
        if not new:
            return
        if self.count + len(new) > len(self.values):
            grown = np.empty(max(2 * len(self.values), self.count + len(new)), dtype=np.float64)
            grown[: self.count] = self.values[: self.count]
            self.values = grown
        self.values[self.count : self.count + len(new)] = [float(value) for value in new]
        self.count += len(new)

    def p50_p95(self) -> tuple[float | None, float | None]:
        if not self.count:
            return None, None
        if self.percentiles is None or self.percentiles_of != self.count:  # a finished batch: computed once
            p50, p95 = np.percentile(self.values[: self.count], [50, 95]).tolist()
            self.percentiles, self.percentiles_of = (p50, p95), self.count
        return self.percentiles


class LatencyCache:
    """The latency values a process has read, per batch, for the few batches it last asked about."""

    def __init__(self, max_batches: int = MAX_BATCHES) -> None:
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._max_batches = max_batches

    def start(self, batch: str) -> int:
        """The index to read the batch's latency list from: the values before it are held here."""
        seen = self._seen.get(batch)
        return seen.count if seen is not None else 0

    def percentiles(
        self, batch: str, created_at: bytes, start: int, tail: list[bytes]
    ) -> tuple[float | None, float | None] | None:
        """p50 and p95 with ``tail`` (the list from ``start`` on) added; None when the values held are
        another batch's of that name (deleted, then submitted again) and the list must be read from 0."""
        seen = self._seen.get(batch)
        if seen is None or seen.created_at != created_at:
            if start:
                self._seen.pop(batch, None)
                return None
            seen = _Seen(created_at)
        self._seen[batch] = seen
        self._seen.move_to_end(batch)
        while len(self._seen) > self._max_batches:
            self._seen.popitem(last=False)
        if start > seen.count:  # what was held went (another call's reset) while this read: read again
            return None
        seen.add(start, tail)
        return seen.p50_p95()


LATENCIES = LatencyCache()
"""This process's: the server's status route and the CLI's status share the one reading."""
FIRST_TOKENS = LatencyCache()
"""The same for the batches' times to first token (``keys.batch_first_tokens``), which grow alike."""
