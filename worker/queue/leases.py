"""Leases on running jobs: how a job whose worker died is found and run again within ``lease_s``, and
how a worker that lost a job's lease stops its copy.

arq marks a running job with an ``in-progress`` key and skips the job while that key lives. arq sets
it to outlive the job's whole timeout, so a job whose worker was killed would wait that long (ten
minutes by default) before anyone ran it again. ``AskqWorker`` claims a job with a key that lasts
``lease_s`` and holds its worker's token; under arq's own worker class (``arq worker.WorkerSettings``)
the ``LeaseKeeper`` shortens arq's key to ``lease_s`` as soon as the job starts. Either way a
background task renews the keys of the jobs this process holds every third of the lease. A killed
worker stops renewing, its keys expire, and another worker picks its jobs up.

With a token, a renewal is one Lua call that also says whether each job is still this worker's: the
key holds its token (renewed), or it expired while the record still names this worker as the run's
owner (taken again: nobody else started it), or another worker's token is there (lost). A lost job's
run is cancelled; what it would still publish is dropped (``worker.answering.relay`` asks ``fresh``
before it sends a job's events), and its record writes are refused (``worker.answering.store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from enum import Enum

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys, record
from common.reconnect import describe, is_connection_loss
from common.status import JobState
from worker.queue.supervise import supervised

log = structlog.get_logger(__name__)

# KEYS: per held job, its in-progress key and its record. ARGV: this worker's token, lease (ms).
# Returns per job 1 when it is still this worker's (renewed, or taken again after it expired with the
# record still naming this worker), 0 when another worker holds it or its record moved on, 2 when
# nobody holds it and its record is gone (its batch deleted, or Redis lost askq's data).
_RENEW = f"""
local kept = {{}}
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    kept[(i + 1) / 2] = 1
  end
end
-- Then the expired ones, after every PEXPIRE: taking one back is a SET, which a full Redis refuses
-- when it is a script's first write, and that must not cost the other jobs their renewal.
for i = 1, #KEYS, 2 do
  local n = (i + 1) / 2
  if not kept[n] then
    local holder = redis.call('GET', KEYS[i])
    if not holder and redis.call('EXISTS', KEYS[i + 1]) == 0 then
      kept[n] = 2
    elseif not holder
        and redis.call('HGET', KEYS[i + 1], '{record.STATE}') == '{JobState.RUNNING.value}'
        and redis.call('HGET', KEYS[i + 1], '{record.OWNER}') == ARGV[1] then
      redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
      kept[n] = 1
    else
      kept[n] = 0
    end
  end
end
return kept
"""


class Lease(Enum):
    FRESH = "fresh"
    """Confirmed recently enough that no other worker can have started the job."""
    STALE = "stale"
    """Not confirmed lately (Redis slow or away): wait for the next renewal."""
    LOST = "lost"
    """Another worker holds the job: this run must stop and publish nothing more."""


class LeaseKeeper:
    def __init__(
        self, redis: Redis, lease_s: float, *, claims_lease: bool = False, token: str | None = None
    ) -> None:
        """``token``: this worker's lease token (what its claims write), or None under arq's own worker,
        whose claims write '1': then leases are only renewed, never checked."""
        self._redis = redis
        self._shorten_at_start = not claims_lease
        self._lease_s = lease_s
        self._lease_ms = int(lease_s * 1000)
        self._renew_every_s = lease_s / 3
        self.token = token
        self._held: set[str] = set()
        """Jobs whose lease is checked at each renewal."""
        self._unchecked: set[str] = set()
        """Jobs whose lease is only renewed (a scheduled run's, or any under arq's own worker)."""
        self._tasks: dict[str, asyncio.Task[object]] = {}
        self._confirmed_at: dict[str, float] = {}
        """Per job: when the last renewal that found it this worker's was sent (monotonic)."""
        self._claimed_at: dict[str, float] = {}
        self._lost: set[str] = set()
        self._gone: set[str] = set()
        self._listeners: list[Callable[[], None]] = []
        self._renew_now = asyncio.Event()
        self._script = redis.register_script(_RENEW) if token is not None else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised(self._renew_forever, "renew job leases")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def claimed(self, job_id: str, sent_at: float) -> None:
        """The claim that took the job was sent at ``sent_at`` (monotonic): its lease runs from then.
        A job this worker lost before is its own again (the lost run's events were dropped by now)."""
        self._claimed_at[job_id] = sent_at
        self._lost.discard(job_id)

    def on_renewed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each renewal round (the relay sends events it held meanwhile)."""
        self._listeners.append(listener)

    def renew_soon(self) -> None:
        """Renew now rather than at the next period: a job's events wait for a confirmed lease."""
        self._renew_now.set()

    def state(self, job_id: str) -> Lease:
        """Whether the job is still this worker's, as far as the renewals tell."""
        if job_id in self._lost:
            return Lease.LOST
        confirmed = self._confirmed_at.get(job_id)
        if self._script is None or (confirmed is None and job_id not in self._held):
            return Lease.FRESH  # not fenced: arq's own worker, or a job not held through a lease
        # A lease confirmed at t lives until t + lease_s at least: half of it leaves room for the send.
        if confirmed is not None and time.monotonic() - confirmed < self._lease_s / 2:
            return Lease.FRESH
        return Lease.STALE

    def lost(self, job_id: str) -> bool:
        return job_id in self._lost

    def gone(self, job_id: str) -> bool:
        """The job was lost because its record is gone, not to another worker (asked once)."""
        if job_id in self._gone:
            self._gone.discard(job_id)
            return True
        return False

    @contextlib.asynccontextmanager
    async def hold(self, job_id: str, *, fenced: bool = False) -> AsyncIterator[None]:
        """Keep the job's lease alive for the duration of the block (shortened to ``lease_s`` at once
        when the claim did not set it). With a token and ``fenced``, a lease found lost cancels the
        block's task; ``lost(job_id)`` then says why."""
        checked = fenced and self._script is not None
        if checked:
            self._held.add(job_id)
            self._confirmed_at[job_id] = self._claimed_at.pop(job_id, -float("inf"))
            task = asyncio.current_task()
            if task is not None:
                self._tasks[job_id] = task
        else:
            self._unchecked.add(job_id)
        try:
            if self._shorten_at_start:
                with contextlib.suppress(RedisError):  # the renewal task tries again shortly
                    await self._renew([], [job_id])
            yield
        finally:
            self._held.discard(job_id)
            self._unchecked.discard(job_id)
            self._tasks.pop(job_id, None)
            self._confirmed_at.pop(job_id, None)

    async def _renew(self, checked: list[str], unchecked: list[str]) -> None:
        """Extend each job's in-progress key to ``lease_s`` from now; find the checked ones lost."""
        sent_at = time.monotonic()
        if checked and self._script is not None:
            call_keys: list[str] = []
            for job_id in checked:
                call_keys += [keys.arq_in_progress(job_id), keys.job_record(job_id)]
            kept = await self._script(keys=call_keys, args=[self.token or "", self._lease_ms])
            for job_id, still in zip(checked, kept, strict=True):
                if job_id not in self._held:
                    continue  # ended meanwhile
                if still == 1:
                    self._confirmed_at[job_id] = sent_at
                else:
                    self._lose(job_id, gone=still == 2)
        if unchecked:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in unchecked:
                    pipe.pexpire(keys.arq_in_progress(job_id), self._lease_ms)
                await pipe.execute()

    def _lose(self, job_id: str, *, gone: bool) -> None:
        if gone:
            # Nothing to record the answer in: stop paying for it. The job function says why.
            self._gone.add(job_id)
        else:
            log.warning("lease lost: another worker runs this job now; stopping this run", job_id=job_id)
        self._lost.add(job_id)
        self._held.discard(job_id)
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def _renew_forever(self) -> None:
        while True:
            self._renew_now.clear()
            try:
                await self._renew(list(self._held), list(self._unchecked))
            except Exception as exc:
                # A reset under uvloop is a RuntimeError about a closed transport, not a RedisError.
                if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                    raise
                # The jobs go on; their events wait for a confirmed lease (or are dropped if it is lost).
                log.warning("could not renew job leases", error=describe(exc), jobs=len(self._held))
            for listener in self._listeners:
                listener()
            with contextlib.suppress(TimeoutError):
                # The renewal period, cut short when a job's events wait for a fresh lease.
                await asyncio.wait_for(self._renew_now.wait(), self._renew_every_s)
