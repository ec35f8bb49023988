"""A job's own deadline (``limits.job_timeout_s``), which its waits for the provider do not count
against: for a provider that is away, for a place under a fitted in-flight limit, and for a first
byte from a server whose slots are all busy.

An outage is waited for up to ``provider.outage_wait_s`` (10 minutes by default, as long as the job
timeout): counted, the job timeout would end every job waiting for a provider that is restarting, as
"job timed out", before the outage wait could. So each wait for the provider pushes the deadline back
by as long as it lasts, up to ``provider.outage_wait_s`` over the whole job; arq's own timeout for a
job allows for that much more (``worker.settings``).

The same holds for a busy server: with a fitted limit of 4 calls and a worker holding 64 jobs, the
last job waits for sixty answers before its own is asked; counted, a slow local server made healthy
jobs fail "job timed out" (4 of 40 in a run against llama-server). Those waits are left out too, up
to ``QUEUE_WAIT_S`` over the job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

QUEUE_WAIT_S = 3600.0
"""Waiting for a place and for first bytes that a job may leave out of its ``job_timeout_s``."""


class Deadline:
    """The job's ``asyncio.timeout``, pushed back while the job waits for a provider that is away."""

    def __init__(self, timeout: asyncio.Timeout | None, excusable_s: float) -> None:
        self._timeout = timeout
        self._left_s = excusable_s
        """How much more waiting for the provider may still be left out of the job's time."""

    async def excused(self, wait: Awaitable[T], planned_s: float) -> T:
        """Await ``wait`` (at most ``planned_s``) with the deadline pushed back by as long as it lasts."""
        pushed = self._push(planned_s)  # before the wait, or the deadline could fall inside it
        started = time.monotonic()
        try:
            return await wait
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
