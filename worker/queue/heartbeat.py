"""The worker's heartbeat: its id in ``keys.WORKERS`` scored by an expiry, so that ``askq_workers_alive``
is one ZCOUNT of the unexpired, never a scan for per-worker keys.

A beat every third of ``lease_s`` puts the expiry ``lease_s`` ahead, in Redis's time (workers' clocks
may differ from the reader's): a killed worker drops out within ``lease_s``, as its jobs' leases end
and other workers take them. A clean shutdown removes it at once. Its own loop, not the lease
renewal's: a renewal listener is synchronous, and a beat is a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.reconnect import describe, is_connection_loss
from worker.queue.supervise import supervised

log = structlog.get_logger(__name__)

# KEYS: the workers set. ARGV: this worker's id, lease (ms). Also drops workers expired a lease ago:
# killed, nobody else would remove them.
_BEAT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[2]))
return 1
"""


def worker_id(token: str) -> str:
    """Host, process and ``token``: readable in ``ZRANGE askq:workers``, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


class Heartbeat:
    def __init__(self, redis: Redis, worker: str, lease_s: float) -> None:
        self._redis = redis
        self.worker = worker
        self._lease_ms = int(lease_s * 1000)
        self._every_s = lease_s / 3
        self._script = redis.register_script(_BEAT)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised(self._beat_forever, "worker heartbeat")

    async def beat(self) -> None:
        await self._script(keys=[keys.WORKERS], args=[self.worker, self._lease_ms])

    async def aclose(self) -> None:
        """Stop beating and leave the set: a stopped worker is not counted alive until it expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._redis.zrem(keys.WORKERS, self.worker)
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            log.warning("could not leave the live workers; it expires", error=describe(exc))

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:
                if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                    raise
                log.warning("could not renew the worker's heartbeat", error=describe(exc))
            await asyncio.sleep(self._every_s)  # the beat's period
