"""How the followers (``producer.tail``, ``producer.batch_tail``) read an event log, and where they stand.

The CLI reads the log itself with ``XREAD BLOCK``. A server with many clients of one log reads it
once and hands the entries to each of them (``server.events``): the followers take either reader,
so their rules (no loss, no repeat, gaps, stored ends, the exit rule) are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from common.replay import Entry


class LogReader(Protocol):
    """Reads a log's entries after an entry id, waiting up to ``block_ms`` for one (None: no wait)."""

    async def read(self, log: str, after: bytes | str, count: int, block_ms: int | None) -> list[Entry]: ...


class RedisLogReader:
    """The log read straight from Redis: ``XREAD [BLOCK]``, one connection per waiting reader."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def read(self, log: str, after: bytes | str, count: int, block_ms: int | None) -> list[Entry]:
        streams: dict[KeyT, StreamIdT] = {log: after}
        reply = await self._redis.xread(streams, count=count, block=block_ms)
        return list(reply[0][1]) if reply else []


@dataclass(frozen=True)
class At:
    """Where the items that follow come from in the log, for readers that resume (a server's clients).

    Only yielded when asked for. ``index``: the event's place among its entry's events (batch
    follower), or None: the items follow entry ``after`` (job follower, which resumes by ``seq``).
    """

    after: str
    index: int | None = None


def entry_before(entry_id: str) -> str:
    """The greatest id below ``entry_id``: reading after it starts at ``entry_id`` itself."""
    ms, _, seq = entry_id.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-18446744073709551615" if int(ms) > 0 else "0-0"


def id_text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    """An entry id as a comparable pair (stream ids order by their numbers, not as text)."""
    ms, _, seq = id_text(entry_id).partition("-")
    return int(ms), int(seq or 0)
