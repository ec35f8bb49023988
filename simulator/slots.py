"""A server's slots (llama.cpp's ``--parallel``): requests beyond them wait, first come first served,
without a byte sent (not even headers), as llama-server and llama-cpp-python do."""

from __future__ import annotations

import asyncio
from collections import deque

from .stats import SimStats


class Slots:
    """``capacity`` is read at each request (settings change at run time); 0 means no limit."""

    def __init__(self, stats: SimStats) -> None:
        self.busy = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._stats = stats

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def acquire(self, capacity: int) -> bool:
        """Wait for a slot; False when there are no slots to hold (capacity 0)."""
        if capacity <= 0:
            return False
        if self.busy < capacity and not self._queue:
            self.busy += 1
            return True
        turn = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        self._stats.max_waiting_for_slot = max(self._stats.max_waiting_for_slot, len(self._queue))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(capacity)  # handed a slot as the client hung up: pass it on
            else:
                self._queue.remove(turn)
            raise
        return True

    def release(self, capacity: int) -> None:
        """Free a slot: the longest waiting request takes it (``busy`` counts it already)."""
        self.busy -= 1
        while self._queue and self.busy < max(capacity, 1):
            turn = self._queue.popleft()
            if not turn.done():
                self.busy += 1
                turn.set_result(None)
