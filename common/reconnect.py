"""How long-lived Redis clients (``askq tail``, workers) ride out a dropped connection.

redis-py opens a new connection on the next command after one fails, so reconnecting is waiting a
little, with exponential backoff, and trying again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import RedisUnavailableError
from common.secrets import redact_secrets

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""What a dropped, killed or restarting Redis raises: worth waiting out."""


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
