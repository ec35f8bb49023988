"""How a long-lived reader (``askq tail``) rides out a dropped Redis connection.

redis-py opens a new connection on the next command after one fails, so reconnecting is waiting a
little and trying again; readers resume from the last entry they delivered, losing nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import RedisUnavailableError
from common.secrets import redact_secrets

T = TypeVar("T")

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""What a dropped, killed or restarting Redis raises: worth waiting out."""


@dataclass(frozen=True)
class Reconnecting:
    """The connection to Redis was lost; the reader tries again after ``retry_in_s``."""

    error: str
    retry_in_s: float


class Backoff:
    """Exponential waits between reconnection attempts; gives up after ``give_up_s`` without success."""

    def __init__(self, *, initial_s: float = 0.1, max_s: float = 5.0, give_up_s: float = 300.0) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._give_up_s = give_up_s
        self._failing_since: float | None = None
        self._next_s = initial_s

    def failed(self, exc: BaseException) -> Reconnecting:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        error = redact_secrets(str(exc).split("\n")[0]) or type(exc).__name__
        if now - self._failing_since > self._give_up_s:
            raise RedisUnavailableError(
                f"lost the connection to Redis and could not reconnect for {self._give_up_s:g} s: {error}"
            )
        wait_s, self._next_s = self._next_s, min(self._next_s * 2, self._max_s)
        return Reconnecting(error, wait_s)

    def succeeded(self) -> None:
        self._failing_since = None
        self._next_s = self._initial_s


class Follower(Protocol[T]):
    """A reader that advances by steps, each resuming where the last delivered item left it."""

    @property
    def ended(self) -> bool: ...

    async def step(self) -> list[T]: ...


async def follow_steps(follower: Follower[T]) -> AsyncIterator[T | Reconnecting]:
    """Run ``follower`` to its end, waiting out dropped connections with a notice for each attempt."""
    backoff = Backoff()
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
