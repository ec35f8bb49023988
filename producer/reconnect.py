"""Long-lived readers (``askq tail``) that resume from their last delivered entry after a drop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from common.reconnect import CONNECTION_ERRORS, Backoff, Reconnecting

T = TypeVar("T")

GIVE_UP_S = 300.0
"""A tail gives up after this long without reaching Redis, rather than hang forever."""


class Follower(Protocol[T]):
    """A reader that advances by steps, each resuming where the last delivered item left it."""

    @property
    def ended(self) -> bool: ...

    async def step(self) -> list[T]: ...


async def follow_steps(follower: Follower[T]) -> AsyncIterator[T | Reconnecting]:
    """Run ``follower`` to its end, waiting out dropped connections with a notice for each attempt."""
    backoff = Backoff(give_up_s=GIVE_UP_S)
    while not follower.ended:
        try:
            items = await follower.step()
        except CONNECTION_ERRORS as exc:
            notice = backoff.failed(exc)
            yield notice
            await asyncio.sleep(notice.retry_in_s)  # a pause before reconnecting, not synchronisation
            continue
        backoff.succeeded()
        for item in items:
            yield item
