"""One build of a base at a time: a Redis key set if absent, with an expiry renewed while it runs.

Two builds at once would each embed every changed file (paying twice) and the later write would
replace the earlier for nothing. The key names who holds it, so the refusal can say; a build that
dies leaves it to expire within ``LOCK_TTL_S``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from types import TracebackType

from redis.asyncio import Redis

from common import keys
from common.errors import KnowledgeError
from common.reconnect import waits_out

LOCK_TTL_S = 60
RENEW_EVERY_S = LOCK_TTL_S / 3

# KEYS: the lock. ARGV: its holder's token, ms to live. 1 when renewed, 0 when no longer held.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: the lock. ARGV: its holder's token. Deleted only by its holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BuildLock:
    def __init__(self, redis: Redis, name: str) -> None:
        self._redis = redis
        self._name = name
        self._key = keys.knowledge_build_lock(name)
        started = time.strftime("%H:%M:%S")
        self.token = f"{socket.gethostname()} pid {os.getpid()} since {started} {uuid.uuid4().hex[:8]}"
        """What the lock key holds while this build has it (``index_store.write_version`` checks it)."""
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False
        """Set when a renewal found the lock gone (expired while Redis or this process stalled)."""

    async def __aenter__(self) -> BuildLock:
        if not await self._redis.set(self._key, self.token, nx=True, ex=LOCK_TTL_S):
            holder = await self._redis.get(self._key)
            by = holder.decode().rsplit(" ", 1)[0] if holder else "another build"
            raise KnowledgeError(
                f"knowledge base {self._name!r} is being built already (by {by}); "
                "wait for that build to end, then run this one again"
            )
        self._renewer = asyncio.create_task(self._renew_until_released())
        return self

    async def _renew_until_released(self) -> None:
        renew = self._redis.register_script(_RENEW)
        while True:
            await asyncio.sleep(RENEW_EVERY_S)  # a lease period, not synchronisation
            try:
                renewed = await renew(keys=[self._key], args=[self.token, LOCK_TTL_S * 1000])
            except Exception as exc:
                if not waits_out(exc):
                    raise
                continue  # Redis away for a moment: two more tries before the key could expire
            if not renewed:
                self.lost = True
                return

    def check(self) -> None:
        """Raise when the lock was lost: another build may hold it now, and writing would race it."""
        if self.lost:
            raise KnowledgeError(
                f"the build of knowledge base {self._name!r} lost its lock (Redis or this process stalled "
                f"for over {LOCK_TTL_S} s); nothing was written: run it again"
            )

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self._redis.register_script(_RELEASE)(keys=[self._key], args=[self.token])
