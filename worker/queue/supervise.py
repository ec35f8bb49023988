"""A worker's long-lived background tasks (the event relay, the lease renewer, the wake-up listener)
must not die silently: one that did would leave the worker running without publishing events or
renewing leases, for the rest of its life, with nothing in the log.

``supervised`` runs such a task's loop, and if the loop ever ends with an exception, logs it and
starts the loop again after a backoff. A lost connection to Redis is expected (each loop already
waits those out; this is the last line) and is one warning line; anything else is a bug, logged once
as an error with its traceback, then as one line each time it happens again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from common.reconnect import Backoff, describe, waits_out

log = structlog.get_logger(__name__)

RESTART_AFTER_S = 0.5
"""The first wait before a crashed loop starts again; it doubles up to ``RESTART_MAX_S``."""
RESTART_MAX_S = 30.0
HEALTHY_S = 60.0
"""A loop that ran this long before it crashed starts again after the first wait, not a longer one."""


def supervised(loop: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
    """Run ``loop`` as a task named ``name``, restarted whenever it raises; the task ends when ``loop``
    returns or the task is cancelled."""
    return asyncio.create_task(_supervise(loop, name), name=name)


async def _supervise(loop: Callable[[], Awaitable[None]], name: str) -> None:
    backoff = Backoff(initial_s=RESTART_AFTER_S, max_s=RESTART_MAX_S)
    logged: set[str] = set()
    while True:
        started = time.monotonic()
        try:
            await loop()
            return
        except Exception as exc:  # CancelledError is a BaseException: cancelling still stops the task
            if time.monotonic() - started > HEALTHY_S:
                backoff.succeeded()
            notice = backoff.failed(exc)
            first_time = f"{type(exc).__name__}: {exc}" not in logged
            logged.add(f"{type(exc).__name__}: {exc}")
            if waits_out(exc):
                log.warning("background task lost redis; restarting", task=name, error=notice.error)
            else:
                log.error(
                    "background task crashed; restarting",
                    task=name,
                    error=f"{type(exc).__name__}: {describe(exc)}",
                    retry_in_s=notice.retry_in_s,
                    exc_info=first_time,
                )
        await asyncio.sleep(notice.retry_in_s)  # backoff: a loop failing at once must not spin
