"""One Redis subscription per event log for all of a server's clients, and one reader of that log.

A client of a live stream would otherwise hold a connection blocked in ``XREAD`` (and a busy server
hundreds). Here each log being followed has one feed: it subscribes to the log's pub/sub channel,
and on each message (or every ``POLL_S``, should a message be lost with a dropped connection) reads
the log on from where it stands and hands the entries, with their ids, to every client's queue.
The channel only says *when* to read: the log says *what*, in order, so a client's place is always
an entry id and nothing falls between the backlog a client reads itself and the entries handed to it.

A client of one job is handed only the entries holding its events, with only its events in them
(``job_views``): the feed parses each entry once for all of them, where each would otherwise parse
(and be woken by) every entry of its batch, the events of all the batch's running jobs.

A client's queue is bounded: a client too slow to keep up loses its queue, not the others' pace,
and reads the log itself from its own place until it has caught up (``HubReader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any

import structlog
from redis.asyncio import Redis

from common.reconnect import Backoff, waits_out
from common.replay import LOG_FIELD_BYTES, Entry, ParsedFields, parse_events
from producer.log_reader import RedisLogReader, id_key

log = structlog.get_logger(__name__)

POLL_S = 1.0
"""Longest a feed goes without reading its log: bounds the delay of an entry whose message was lost."""
HUB_READ_COUNT = 500
QUEUE_ENTRIES = 1000
"""Entries a client's queue holds (each one flush of a worker); past that, the client reads the log."""


class Listener:
    """One client's queue of a feed's entries (of one job's events only, with ``job_id``)."""

    def __init__(self, limit: int, job_id: str | None = None) -> None:
        self._limit = limit
        self.job_id = job_id
        self.entries: deque[Entry] = deque()
        self.overflowed = False
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._handed_up_to: bytes | str | None = None
        """The id of the last entry ``take`` handed out."""

    def offer(self, entries: list[Entry]) -> None:
        if self.overflowed or not entries:
            return
        if len(self.entries) + len(entries) > self._limit:
            # Too far behind: drop the queue (memory stays bounded); the client reads the log instead.
            self.overflowed = True
            self.entries.clear()
        else:
            self.entries.extend(entries)
        if self._waiter is not None:
            _wake(self._waiter)

    async def wait(self, timeout_s: float) -> None:
        """Until entries are offered (or the queue is dropped), ``timeout_s`` at most.

        Each of a worker's flushes ends hundreds of waits at once, so a wait is one future: not
        ``asyncio.wait_for`` (a task of its own per wait in Python 3.11), nor a timer set and
        cancelled per wait. The listener's one timer, set for a wait's deadline, ends the wait then
        running if that one's deadline has come, else is set again for it: a client woken every
        flush sets it about once per ``timeout_s``, not 25 times a second."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout_s
        waiter = self._waiter = loop.create_future()
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._time_up)
        try:
            await waiter
        finally:
            self._waiter = None

    def _time_up(self) -> None:
        self._timer = None
        if self._waiter is None:
            return  # no wait now: the next one sets the timer
        loop = self._waiter.get_loop()
        if loop.time() >= self._deadline:
            _wake(self._waiter)
        else:
            self._timer = loop.call_at(self._deadline, self._time_up)

    def take(self, after: bytes | str, count: int) -> list[Entry]:
        """Up to ``count`` queued entries after ``after`` (older ones the client read itself)."""
        if after != self._handed_up_to:  # else every queued entry is newer: no id to parse
            floor = id_key(after)
            while self.entries and id_key(self.entries[0][0]) <= floor:
                self.entries.popleft()
        taken = [self.entries.popleft() for _ in range(min(count, len(self.entries)))]
        if taken:
            self._handed_up_to = taken[-1][0]
        return taken


class Feed:
    def __init__(self, redis: Redis, log_key: str, channel: str, queue_limit: int) -> None:
        self._redis = redis
        self._log = log_key
        self._channel = channel
        self._queue_limit = queue_limit
        self.listeners: set[Listener] = set()
        self.ready = asyncio.Event()
        """Set once the feed knows where it starts in the log: clients read up to there themselves."""
        self._last_id: bytes | str = "0-0"
        self.task = asyncio.create_task(self._run(), name=f"askq-feed:{channel}")

    def join(self, job_id: str | None = None) -> Listener:
        listener = Listener(self._queue_limit, job_id)
        self.listeners.add(listener)
        return listener

    async def _run(self) -> None:
        pubsub = self._redis.pubsub()
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._follow(pubsub)
                except Exception as exc:
                    if not waits_out(exc):
                        raise
                    notice = backoff.failed(exc)
                    log.warning("live feed lost redis", channel=self._channel, error=notice.error)
                    await asyncio.sleep(notice.retry_in_s)  # a pause before reconnecting
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # closes its connection: the subscription goes with it

    async def _follow(self, pubsub: Any) -> None:
        if not pubsub.subscribed:
            await pubsub.subscribe(self._channel)
        if not self.ready.is_set():
            newest = await self._redis.xrevrange(self._log, count=1)
            self._last_id = newest[0][0] if newest else "0-0"
            self.ready.set()
        while True:
            await self._read_on()
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            while message is not None:  # a burst of flushes: one read takes them all
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)

    async def _read_on(self) -> None:
        reader = RedisLogReader(self._redis)
        while True:
            entries = await reader.read(self._log, self._last_id, HUB_READ_COUNT, None)
            if not entries:
                return
            self._last_id = entries[-1][0]
            views = job_views(entries) if any(listener.job_id for listener in self.listeners) else {}
            for listener in list(self.listeners):
                listener.offer(entries if listener.job_id is None else views.get(listener.job_id, []))
            if len(entries) < HUB_READ_COUNT:
                return


def job_views(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Each job's view of ``entries``: those holding its events, each with only its events (in order),
    parsed once here for all the job's clients."""
    views: dict[str, list[Entry]] = {}
    for entry_id, fields in entries:
        by_job: dict[str, list[Any]] = {}
        for item in _items(fields):
            if isinstance(item, dict) and isinstance(job_id := item.get("job_id"), str):
                by_job.setdefault(job_id, []).append(item)
        for job_id, items in by_job.items():
            fields = ParsedFields({LOG_FIELD_BYTES: json.dumps(items).encode()}, parse_events(items))
            views.setdefault(job_id, []).append((entry_id, fields))
    return views


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _items(fields: dict[bytes, bytes]) -> list[Any]:
    """An entry's events as parsed JSON: nothing of an entry that is not askq's (readers skip it too)."""
    try:
        items = json.loads(fields.get(LOG_FIELD_BYTES) or b"[]")
    except ValueError:
        return []
    return items if isinstance(items, list) else []


class LiveHub:
    """The server's feeds, one per log with clients; made on first use, closed with the app."""

    def __init__(self, redis: Redis, *, queue_limit: int = QUEUE_ENTRIES) -> None:
        self._redis = redis
        self._queue_limit = queue_limit
        self._feeds: dict[str, Feed] = {}

    def logs(self) -> list[str]:
        """The logs that have a feed (each with one subscription and one reader)."""
        return list(self._feeds)

    async def join(self, log_key: str, channel: str, job_id: str | None = None) -> tuple[Feed, Listener]:
        """A queue of the log's entries from now on (``job_id``: its views of them); the caller reads
        what came before from the log."""
        feed = self._feeds.get(log_key)
        if feed is None or feed.task.done():
            feed = self._feeds[log_key] = Feed(self._redis, log_key, channel, self._queue_limit)
        listener = feed.join(job_id)
        ready = asyncio.ensure_future(feed.ready.wait())
        try:
            await asyncio.wait({ready, feed.task}, return_when=asyncio.FIRST_COMPLETED)
            if not feed.ready.is_set():  # the feed failed before it started: its error says why
                feed.task.result()
        except BaseException:
            # Hung up (cancelled) or failed before the caller holds the listener, so it cannot leave:
            # leave here, or the feed keeps its subscription and its poll for the life of the server.
            self.leave(log_key, feed, listener)
            raise
        finally:
            ready.cancel()
        return feed, listener

    def leave(self, log_key: str, feed: Feed, listener: Listener) -> None:
        feed.listeners.discard(listener)
        if not feed.listeners:
            if self._feeds.get(log_key) is feed:
                del self._feeds[log_key]
            feed.task.cancel()

    async def aclose(self) -> None:
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.task.cancel()
        await asyncio.gather(*(feed.task for feed in feeds), return_exceptions=True)
