"""How long-lived Redis clients (``askq tail``, workers) ride out a dropped connection or a full Redis.

redis-py opens a new connection on the next command after one fails, so reconnecting is waiting a
little, with exponential backoff, and trying again. Which errors are worth waiting out is decided
here, by what they mean rather than by their class alone: under uvloop a connection reset in the
middle of a command surfaces as a ``RuntimeError`` about a closed transport, and a Redis at its
``maxmemory`` refuses writes (``OOM``) until memory is freed or the limit raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import RedisUnavailableError
from common.secrets import redact_secrets

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""What a dropped, killed or restarting Redis raises: worth waiting out."""

OUT_OF_MEMORY = "Redis is out of memory (used memory > maxmemory): raise maxmemory or free memory"
_CLOSED_TRANSPORT = "unable to perform operation on"
_OOM_REPLY = "OOM command not allowed"


def is_connection_loss(exc: BaseException) -> bool:
    """The connection dropped, whatever the event loop raised for it."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    # uvloop: "unable to perform operation on <TCPTransport closed=True ...>; the handler is closed"
    return isinstance(exc, RuntimeError) and _CLOSED_TRANSPORT in str(exc) and "closed" in str(exc)


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis refused a write at its ``maxmemory``; inside a script the reply is wrapped in ERR."""
    return isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and _OOM_REPLY in str(exc))


def waits_out(exc: BaseException) -> bool:
    """Worth trying again later: Redis is away, restarting, full, or a replica during a failover."""
    return is_connection_loss(exc) or is_out_of_memory(exc) or isinstance(exc, ReadOnlyError)


def describe(exc: BaseException) -> str:
    """One line for a log or a terminal, credentials masked."""
    if is_out_of_memory(exc):
        return OUT_OF_MEMORY
    return redact_secrets(str(exc).split("\n")[0]) or type(exc).__name__


@dataclass(frozen=True)
class Reconnecting:
    """The connection to Redis was lost; the reader tries again after ``retry_in_s``."""

    error: str
    retry_in_s: float


class Backoff:
    """Exponential waits between reconnection attempts; gives up after ``give_up_s`` without success."""

    def __init__(
        self, *, initial_s: float = 0.1, max_s: float = 5.0, give_up_s: float = float("inf")
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._give_up_s = give_up_s
        self._failing_since: float | None = None
        self._next_s = initial_s

    def failed(self, exc: BaseException) -> Reconnecting:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        error = describe(exc)
        if now - self._failing_since > self._give_up_s:
            if is_out_of_memory(exc):
                raise RedisUnavailableError(f"Redis stayed out of memory for {self._give_up_s:g} s: {error}")
            raise RedisUnavailableError(
                f"lost the connection to Redis and could not reconnect for {self._give_up_s:g} s: {error}"
            )
        wait_s, self._next_s = self._next_s, min(self._next_s * 2, self._max_s)
        return Reconnecting(error, wait_s)

    def succeeded(self) -> None:
        self._failing_since = None
        self._next_s = self._initial_s


class OutageLog:
    """One line when Redis becomes unusable and one when it is back, however many jobs wait it out:
    a full or restarting Redis under a busy worker would otherwise log a line per job per try."""

    def __init__(self, logger: Any, event: str) -> None:
        self._log = logger
        self._event = event
        self._down = False

    def failed(self, error: str, **fields: Any) -> None:
        if self._down:
            self._log.debug(self._event, error=error, **fields)
            return
        self._down = True
        self._log.warning(self._event, error=error, **fields)

    def recovered(self) -> None:
        if self._down:
            self._down = False
            self._log.info("redis reachable again", after=self._event)
