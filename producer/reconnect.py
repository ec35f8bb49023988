"""Long-lived readers (``askq tail``) that resume from their last delivered entry after a drop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, Protocol, TypeVar

from common.reconnect import CONNECTION_ERRORS, Backoff, Reconnecting

T = TypeVar("T")
P = ParamSpec("P")

GIVE_UP_S = 300.0
"""A tail gives up after this long without reaching Redis, rather than hang forever."""


class Follower(Protocol[T]):
    """A reader that advances by steps, each resuming where the last delivered item left it."""

    @property
    def ended(self) -> bool: ...

    async def step(self) -> list[T]: ...


async def follow_steps(follower: Follower[T]) -> AsyncIterator[list[T | Reconnecting]]:
    """Run ``follower`` to its end, a step's items at a time, waiting out dropped connections with a
    notice for each attempt."""
    backoff = Backoff(give_up_s=GIVE_UP_S)
    while not follower.ended:
        try:
            items: list[T | Reconnecting] = [*await follower.step()]
        except CONNECTION_ERRORS as exc:
            notice = backoff.failed(exc)
            yield [notice]
            await asyncio.sleep(notice.retry_in_s)  # a pause before reconnecting, not synchronisation
            continue
        backoff.succeeded()
        if items:
            yield items


def each_item(reads: Callable[P, AsyncIterator[list[T]]]) -> Callable[P, AsyncIterator[T]]:
    """A follower that yields a read's items in one list, as one that yields them one by one."""

    @functools.wraps(reads)
    async def items(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        async for read in reads(*args, **kwargs):
            for item in read:
                yield item

    return items
