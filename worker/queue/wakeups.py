"""What makes an idle worker poll at once: a producer's wake message, or one of its own jobs ending.

A worker handing a job back (``WAKE_FROM_HEAD``) also asks the others to read the queue from its
head at their next claim, since the job keeps its old place, behind where their claims start.

arq polls on a fixed delay, so a job enqueued just after a poll waits that long before it starts,
and a slot freed by a finished job stays empty until the next poll. Here the poll loop waits on an
event instead, set by a message on the queue's wake channel or by a job ending; what no one
announces has its own timer (``worker.queue.idle``).

Wake messages are advice: while the subscription is down (``listening`` is false) the worker polls
every ``poll_delay_s``, and it polls once as the subscription comes up, for a message sent meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.reconnect import Backoff, is_connection_loss
from worker.queue.supervise import supervised

log = structlog.get_logger(__name__)


class Wakeups:
    def __init__(self, queue: str) -> None:
        self._channel = keys.queue_wake(queue)
        self._event = asyncio.Event()
        self._from_head = False
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False

    @property
    def listening(self) -> bool:
        """Whether a wake message would reach this worker now."""
        return self._subscribed and self._task is not None and not self._task.done()

    def start(self, redis: Redis) -> None:
        if self._task is None:
            self._task = supervised(lambda: self._listen(redis), f"listen {self._channel}")

    def wake(self) -> None:
        self._event.set()

    def take_from_head(self) -> bool:
        """Whether a wake-up since the last call asked for the queue to be read from its head."""
        from_head, self._from_head = self._from_head, False
        return from_head

    async def wait(self, timeout_s: float) -> None:
        """Return when woken, or after ``timeout_s``; a wake that came while polling counts."""
        # A timer that sets the event, not wait_for: this runs after every poll, and wait_for
        # makes a task each time.
        timer = asyncio.get_running_loop().call_later(timeout_s, self._event.set)
        try:
            await self._event.wait()
        finally:
            timer.cancel()
        self._event.clear()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, redis: Redis) -> None:
        backoff = Backoff()
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "subscribe":
                            # Redis confirmed: messages reach us from here on. One sent before
                            # was missed, so this too wakes the worker, to poll once.
                            backoff.succeeded()
                            self._subscribed = True
                        elif message.get("data") == keys.WAKE_FROM_HEAD:
                            self._from_head = True
                        self._event.set()
            except Exception as exc:
                # A reset under uvloop is a RuntimeError about a closed transport, not a RedisError.
                if not (isinstance(exc, (RedisError, OSError)) or is_connection_loss(exc)):
                    raise
                if self._subscribed:  # lost: back to polling on the delay, from now
                    self._subscribed = False
                    self._event.set()
                notice = backoff.failed(exc)
                log.debug("wake channel unavailable", error=notice.error, retry_in_s=notice.retry_in_s)
                await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
