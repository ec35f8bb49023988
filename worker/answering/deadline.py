"""A job's own deadline (``limits.job_timeout_s``), which its waits for a provider that is away do not
count against.

An outage is waited for up to ``provider.outage_wait_s`` (10 minutes by default, as long as the job
timeout): counted, the job timeout would end every job waiting for a provider that is restarting, as
"job timed out", before the outage wait could. So each wait for the provider pushes the deadline back
by as long as it lasts, up to ``provider.outage_wait_s`` over the whole job; arq's own timeout for a
job allows for that much more (``worker.settings``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable


class Deadline:
    """The job's ``asyncio.timeout``, pushed back while the job waits for a provider that is away."""

    def __init__(self, timeout: asyncio.Timeout | None, excusable_s: float) -> None:
        self._timeout = timeout
        self._left_s = excusable_s
        """How much more waiting for the provider may still be left out of the job's time."""

    async def excused(self, wait: Awaitable[None], planned_s: float) -> None:
        """Await ``wait`` (at most ``planned_s``) with the deadline pushed back by as long as it lasts."""
        pushed = self._push(planned_s)  # before the wait, or the deadline could fall inside it
        started = time.monotonic()
        try:
            await wait
        finally:
            self._push(-max(pushed - (time.monotonic() - started), 0.0))  # what it did not use

    def _push(self, seconds: float) -> float:
        """Push the deadline back by ``seconds`` (forward if negative), within what may be excused."""
        timeout = self._timeout
        if timeout is None or timeout.expired() or timeout.when() is None:
            return 0.0  # no deadline, or it has struck: the job is ending
        when = timeout.when()
        assert when is not None
        seconds = min(seconds, self._left_s)
        self._left_s -= seconds
        timeout.reschedule(when + seconds)
        return seconds
