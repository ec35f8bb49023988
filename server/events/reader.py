"""A client's reader of an event log through the server's hub (``server.events.hub``).

It reads the log itself until it has caught up (from the client's own place, which may be far back:
a late joiner, a ``Last-Event-ID``, a queue that overflowed), then takes the hub's entries. Its queue
is armed before that read, so an entry is either in what the read returns or in the queue after it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from common.replay import Entry
from producer.log_reader import RedisLogReader
from server.events.hub import Feed, Listener, LiveHub


class HubReader:
    """``producer.log_reader.LogReader`` for one client of the logs in ``channels`` (log key -> channel);
    any other log, and reads that do not wait, go straight to Redis. With ``job_id``, the hub hands it
    only that job's events: for a reader that keeps no other (``producer.tail``)."""

    def __init__(
        self, hub: LiveHub, redis: Redis, channels: dict[str, str], *, job_id: str | None = None
    ) -> None:
        self._hub = hub
        self._job_id = job_id
        self._direct = RedisLogReader(redis)
        self._channels = channels
        self._joined: dict[str, tuple[Feed, Listener]] = {}
        self._catching_up: set[str] = set()

    async def read(self, log: str, after: bytes | str, count: int, block_ms: int | None) -> list[Entry]:
        if block_ms is None or log not in self._channels:
            return await self._direct.read(log, after, count, block_ms)
        feed, listener = await self._join(log)
        if feed.task.done():  # the feed failed (its error is in the server's log): read on alone
            return await self._direct.read(log, after, count, block_ms)
        if listener.overflowed:
            listener.overflowed = False  # armed again from here; what it dropped is in the log
            self._catching_up.add(log)
        if log in self._catching_up:
            entries = await self._direct.read(log, after, count, None)
            if len(entries) < count:
                self._catching_up.discard(log)  # read to the log's end: the queue has the rest
            if entries:
                return entries
        taken = listener.take(after, count)
        if taken or listener.overflowed:
            return taken
        await listener.wait(block_ms / 1000)
        return [] if listener.overflowed else listener.take(after, count)

    def behind(self, log: str) -> bool:
        """Its queue of the log overflowed: it reads the log itself until it has caught up."""
        joined = self._joined.get(log)
        return joined is not None and (joined[1].overflowed or log in self._catching_up)

    async def _join(self, log: str) -> tuple[Feed, Listener]:
        joined = self._joined.get(log)
        if joined is None:
            joined = self._joined[log] = await self._hub.join(log, self._channels[log], self._job_id)
            self._catching_up.add(log)
        return joined

    def close(self) -> None:
        for log, (feed, listener) in self._joined.items():
            self._hub.leave(log, feed, listener)
        self._joined = {}
