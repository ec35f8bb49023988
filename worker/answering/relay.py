"""One per worker process: sends the events of all its running jobs to Redis, one round trip a flush.

Jobs hand their events over without waiting (``add``, and ``watch`` for text still being
gathered). A background task sends what has gathered: at once when it has been quiet for a flush
interval, otherwise at most every ``flush_interval_ms``, or sooner when ``flush_chars`` of text wait.
A flush writes one entry per feed (a batch's log, or a scheduled run's) holding every event of that
feed since the last flush, and publishes the same bytes on the feed's channel: two commands however
many jobs and tokens it carries.

A failed send keeps its events, in order, for the next flush: events are a view of the jobs, not
their results, so a Redis outage must not fail a job. Readers drop the repeats a resend can make.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import StreamConfig
from common.reconnect import describe, is_connection_loss
from common.replay import encode_entry
from worker.queue.supervise import supervised

log = structlog.get_logger(__name__)

EXPIRE_EVERY_S = 60.0
"""A log's expiry is pushed back at most this often (half the retention, if shorter), not with every
flush; it is kept that much longer than the retention, so it never goes before a job's record."""

RETRY_AFTER_S = 0.5
"""After a failed send, the wait before the next try."""

Feed = tuple[str, str]
"""An event log and its channel."""


class TextSource(Protocol):
    def seal(self) -> None:
        """Hand the text gathered since the last call to the relay, as numbered events."""


class EventRelay:
    def __init__(self, redis: Redis, config: StreamConfig, ttl_s: int) -> None:
        self._redis = redis
        self._config = config
        self._refresh_s = min(EXPIRE_EVERY_S, ttl_s / 2)
        self._log_ttl_s = ttl_s + math.ceil(self._refresh_s)
        self._interval_s = config.flush_interval_ms / 1000
        self._waiting: dict[Feed, list[str]] = {}
        self._sources: dict[TextSource, None] = {}
        """Jobs with text not yet sealed into events, in the order they started gathering."""
        self._chars = 0
        self._expired_at: dict[str, float] = {}
        self._last_flush = -float("inf")
        self._due = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised(self._run, "event relay")

    def add(self, feed: Feed, event_json: str) -> None:
        """Queue one event, already numbered, for the next flush."""
        waiting = self._waiting.get(feed)
        if waiting is None:
            self._waiting[feed] = [event_json]
        else:
            waiting.append(event_json)
        self._arm()

    def watch(self, source: TextSource, chars: int) -> None:
        """``source`` gathered ``chars`` more characters of text; it is sealed at the next flush."""
        self._sources[source] = None
        self._chars += chars
        if self._chars >= self._config.flush_chars:
            self._flush_now()
        else:
            self._arm()

    async def aclose(self) -> None:
        """Send what is left (one try), then stop."""
        self._closing = True
        self._flush_now()
        if self._task is not None:
            await self._task

    def _arm(self) -> None:
        # One timer per flush interval, not a wake-up per token: the wake-ups cost more than tokens.
        if self._timer is not None or self._due.is_set():
            return
        delay = self._last_flush + self._interval_s - time.monotonic()
        if delay <= 0:
            self._flush_now()
        else:
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_now)

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.set()

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            # The interval runs from the flush's start: what arrives during it waits out the rest.
            self._last_flush = time.monotonic()
            for source in list(self._sources):
                source.seal()
            self._sources.clear()
            self._chars = 0
            sending, self._waiting = self._waiting, {}
            if sending:
                await self._send(sending)
            if self._closing:
                return

    async def _send(self, sending: dict[Feed, list[str]]) -> None:
        try:
            await self._write(sending)
        except Exception as exc:
            # A reset under uvloop is a RuntimeError about a closed transport, not a RedisError.
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            count = sum(len(events) for events in sending.values())
            if self._closing:
                log.warning("events lost", error=describe(exc), events=count)
                return
            log.warning(
                "publish failed; will retry", error=describe(exc), events=count, retry_in_s=RETRY_AFTER_S
            )
            for feed, events in self._waiting.items():
                sending.setdefault(feed, []).extend(events)
            self._waiting = sending
            await asyncio.sleep(RETRY_AFTER_S)  # Redis is away: back off rather than retry every flush
            self._arm()

    async def _write(self, sending: dict[Feed, list[str]]) -> None:
        now = time.monotonic()
        refreshed: list[str] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for (log_key, channel), events in sending.items():
                data = encode_entry(events)
                pipe.xadd(
                    log_key, {keys.LOG_FIELD: data}, maxlen=self._config.log_max_entries, approximate=True
                )
                pipe.publish(channel, data)
                if now - self._expired_at.get(log_key, -math.inf) >= self._refresh_s:
                    pipe.expire(log_key, self._log_ttl_s)
                    refreshed.append(log_key)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        for log_key in refreshed:
            self._expired_at[log_key] = now
