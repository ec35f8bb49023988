"""Leases on running jobs: how a job whose worker died is found and run again within ``lease_s``.

arq marks a running job with an ``in-progress`` key and skips the job while that key lives. arq sets
it to outlive the job's whole timeout, so a job whose worker was killed would wait that long (ten
minutes by default) before anyone ran it again. ``AskqWorker`` claims a job with a key that lasts
``lease_s``; under arq's own worker class (``arq worker.WorkerSettings``) the ``LeaseKeeper``
shortens the key to ``lease_s`` as soon as the job starts. Either way a background task renews
the keys of the jobs this process holds every third of the lease. A killed worker stops renewing,
its keys expire, and another worker picks its jobs up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.reconnect import describe, is_connection_loss
from worker.queue.supervise import supervised

log = structlog.get_logger(__name__)


class LeaseKeeper:
    def __init__(self, redis: Redis, lease_s: float, *, claims_lease: bool = False) -> None:
        self._redis = redis
        self._shorten_at_start = not claims_lease
        self._lease_ms = int(lease_s * 1000)
        self._renew_every_s = lease_s / 3
        self._held: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised(self._renew_forever, "renew job leases")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def hold(self, job_id: str) -> AsyncIterator[None]:
        """Keep the job's lease alive for the duration of the block (shortened to ``lease_s`` at once
        when the claim did not set it)."""
        self._held.add(job_id)
        try:
            if self._shorten_at_start:
                with contextlib.suppress(RedisError):  # the renewal task tries again shortly
                    await self._renew([job_id])
            yield
        finally:
            self._held.discard(job_id)

    async def _renew(self, held: list[str]) -> None:
        """Shorten or extend each job's in-progress key to ``lease_s`` from now."""
        if not held:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in held:
                pipe.pexpire(keys.arq_in_progress(job_id), self._lease_ms)
            await pipe.execute()

    async def _renew_forever(self) -> None:
        while True:
            try:
                await self._renew(list(self._held))
            except Exception as exc:
                # A reset under uvloop is a RuntimeError about a closed transport, not a RedisError.
                if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                    raise
                # The jobs go on; if Redis stays away longer than the lease, they may run twice.
                log.warning("could not renew job leases", error=describe(exc), jobs=len(self._held))
            await asyncio.sleep(self._renew_every_s)  # the renewal period
