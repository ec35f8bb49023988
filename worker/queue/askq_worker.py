"""arq's ``Worker`` with askq's polling: it rides out Redis outages, claims jobs in one round trip
and polls the moment there is work instead of on a fixed delay.

- **Outages.** A Redis restart makes arq's poll raise, and stock arq lets that end the worker. Here
  the poll waits and tries again with backoff, logging when Redis goes away and when it is back;
  running jobs wait out the outage on their own (``worker.answering.store``).
- **Leases.** arq's claim on a job it starts lasts the job's whole timeout; here it is a short
  lease (``worker.queue.leases``), so a job whose start failed half-way is not stranded for ten minutes.
- **Claims.** A poll claims jobs in one Lua call that reads the queue itself (``worker.queue.claims``);
  arq's own read of the queue is cut to one id, which only says whether anything is due.
- **Wake-ups.** Between polls the worker waits for a producer's wake message or one of its jobs
  ending (``worker.queue.wakeups``); its own timer is set only for what nobody announces, a
  deferred job coming due, a lost worker's lease ending, the health record, a cron tick
  (``worker.queue.idle``). It polls every ``poll_delay`` while no wake-up can reach it.

Everything else is arq's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from signal import Signals
from typing import Any

import structlog
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.reconnect import Backoff, describe, waits_out
from common.redis_health import LineageWatch, data_lost
from worker.queue.claims import JobClaims
from worker.queue.finishing import Finish, GuardedFinish
from worker.queue.idle import CRON_EARLY_S, QueueLook, wait_s
from worker.queue.rejections import RejectingFunctions
from worker.queue.wakeups import Wakeups

log = structlog.get_logger(__name__)


class AskqWorker(Worker):
    _backoff: Backoff | None = None
    _outage = False
    _claims: JobClaims | None = None
    _stop_asked = False
    _guarded_finish: GuardedFinish | None = None
    _look: QueueLook | None = None
    # What the last poll learnt for the wait after it (epoch seconds, or seconds for the rewalk).
    _next_due_s: float | None = None
    _tick_due_s: float | None = None
    _head_read_in_s: float | None = None
    _read_on = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A job naming a function this worker lacks is rejected and recorded, not only logged.
        self.functions = RejectingFunctions(self.functions)
        config: AskqConfig = self.ctx["config"]
        self.in_progress_timeout_s = config.limits.lease_s
        self.ctx["claims_lease"] = True  # the claim sets the lease: no need to shorten it again
        # What this worker's claims write in a job's in-progress key: a run checks it still holds it.
        self.ctx["lease_token"] = secrets.token_hex(8)
        # Jobs whose run this worker lost to another (its lease): their keys are the new holder's.
        self._disowned: set[str] = set()
        self.ctx["disowned"] = self._disowned
        self._released: set[str] = set()
        self._abandoned: set[str] = set()
        if self.queue_name == keys.QUEUE:  # the queue the job store removes finished jobs from
            self.ctx["released"] = self._released
            self.ctx["abandoned"] = self._abandoned
        lineage: LineageWatch | None = self.ctx.get("lineage")
        if lineage is not None:
            lineage.running = lambda: self.job_counter
        # arq sleeps poll_delay after every poll; here the wait happens in _poll_iteration, on wake-ups.
        self._idle_poll_s, self.poll_delay_s = self.poll_delay_s, 0.0
        # Listening for wake-ups, a worker looks at its queue this often at least: what a lost
        # worker's jobs wait for anyway, and a plain arq client's jobs, which wake no one.
        self._look_every_s = self.in_progress_timeout_s / 3
        self._wakeups = Wakeups(self.queue_name)
        # arq reads this many ids per poll and hands them to start_jobs, which claims on its own.
        self._look_at, self.queue_read_limit = self.queue_read_limit, 1

    async def _poll_iteration(self) -> None:
        self._wakeups.start(self.pool)
        try:
            await self._poll()
        except Exception as exc:
            if not waits_out(exc):
                raise
            self._backoff = self._backoff or Backoff()
            notice = self._backoff.failed(exc)
            log.warning("redis unavailable; polling again", error=notice.error, retry_in_s=notice.retry_in_s)
            self._outage = True
            await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
            return
        if self._outage:
            log.info("redis reachable again")
            self._outage = False
            if self._backoff is not None:
                self._backoff.succeeded()
            await self._check_lineage()
        await self._wakeups.wait(self._wait_s())

    async def _poll(self) -> None:
        """arq's poll, with one look at the queue that also says when its next deferred job is due,
        and no read of the abort set while no job runs here: only a running job can be aborted
        (``askq cancel`` marks a job still queued cancelled itself)."""
        self._next_due_s = self._tick_due_s = self._head_read_in_s = None
        self._read_on = False
        if self.burst and 0 <= self.max_burst_jobs <= self._jobs_started():
            return
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            if self._look is None:
                self._look = QueueLook(self.pool, self.queue_name)
            due, self._next_due_s = await self._look(timestamp_ms())
            await self.start_jobs(due)
        if self.allow_abort_jobs and self.job_tasks:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job is raised here
        ticks = [cron.next_run for cron in self.cron_jobs]
        await self.heart_beat()
        # A tick this heart beat enqueued waits in the queue, deferred to its time.
        enqueued = [tick for tick, cron in zip(ticks, self.cron_jobs, strict=True) if tick != cron.next_run]
        self._tick_due_s = min((tick.timestamp() for tick in enqueued if tick is not None), default=None)

    def _wait_s(self) -> float:
        """How long to wait for a wake-up before polling again."""
        now_s = time.time()
        if self.burst or self._read_on or not self._wakeups.listening:
            longest_s = min(self._idle_poll_s, self._look_every_s)
        else:
            longest_s = self._look_every_s
        head_read_s = None if self._head_read_in_s is None else now_s + self._head_read_in_s
        ticks_s = [cron.next_run.timestamp() - CRON_EARLY_S for cron in self.cron_jobs if cron.next_run]
        health_s = self._last_health_check + self.health_check_interval
        deadlines_s = [self._next_due_s, self._tick_due_s, head_read_s, health_s, *ticks_s]
        return wait_s(now_s, deadlines_s, longest_s)

    async def _check_lineage(self) -> None:
        """After an outage: did Redis come back without askq's data (a restart without persistence)?"""
        lineage: LineageWatch | None = self.ctx.get("lineage")
        if lineage is None:
            return
        try:
            lost = await lineage.lost(self.pool)
        except RedisError:  # full or away again: the next recovery looks again
            return
        if lost:
            log.error(data_lost(self.job_counter))
            relay = self.ctx.get("relay")
            if relay is not None:
                relay.expire_again()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start as many due jobs as there is room for, claimed in one round trip.

        ``job_ids`` is arq's read of the head of the queue: empty when nothing is due.
        """
        if not job_ids:
            return
        if self._claims is None:
            claim_ms = int(self.in_progress_timeout_s * 1000)
            # A lost worker's jobs come back when their lease ends; a full read a third of a lease
            # later at most finds them.
            self._claims = JobClaims(
                self.pool,
                self.queue_name,
                claim_ms,
                look_at=self._look_at,
                rewalk_s=self.in_progress_timeout_s / 3,
                token=self.ctx["lease_token"],
            )
        if self._wakeups.take_from_head():
            self._claims.read_from_head()
        room = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            room = min(room, self.max_burst_jobs - self._jobs_started())
        sent_at = time.monotonic()
        read_from = self._claims.read_from
        claimed = await self._claims.claim(room, timestamp_ms())
        if room > 0:
            self._head_read_in_s = self._claims.head_read_in_s()
            # Slots left and the claim's start moved on: it may have stopped at its read limit.
            self._read_on = len(claimed) < room and self._claims.read_from != read_from
        leases = self.ctx.get("leases")
        for job_id, score in claimed:
            running = self.tasks.get(job_id)
            if running is not None and not running.done():
                continue  # still running here, its lease lost to a Redis outage: the claim renewed it
            if leases is not None:
                leases.claimed(job_id, sent_at)
            # A task that ended since arq's last sweep is a finished run; this claim is a new one
            # (the job retried): start it, or its claim would hold it for a lease unstarted.
            await self.sem.acquire()
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's start and end of a job, around the job function, talk to Redis outside any job code:
        a connection lost there (a reset, under uvloop a RuntimeError) would end this task with a
        traceback nobody reads. The job is left to its lease instead: it runs again when the lease
        ends, and its one result still holds."""
        try:
            await super().run_job(job_id, score)
        except Exception as exc:
            if not waits_out(exc):
                raise
            log.warning(
                "redis unavailable while starting or finishing a job; it runs again when its lease ends",
                job_id=job_id,
                error=describe(exc),
            )

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's end of a job: nothing left to do for a job whose finish released it (and whose
        result arq does not keep), for one left to run again (``abandoned``: its record could not be
        written) or for one whose run was lost to another worker (``disowned``: its keys are the other
        worker's now); a job queued again while its run ended (``askq retry`` after a cancel) is left
        in the queue; a job handed back to be run again also wakes the other workers."""
        if job_id in self._abandoned or job_id in self._disowned:
            # Its keys stay: an abandoned job's lease, no longer renewed, ends and it is claimed again.
            self._abandoned.discard(job_id)
            self._disowned.discard(job_id)
            self._released.discard(job_id)
            return
        released = job_id in self._released
        self._released.discard(job_id)
        if released and finish and result_data is None:
            return
        if finish and result_data is None and keep_in_progress is None and self.queue_name == keys.QUEUE:
            await self._finish_guarded(job_id)
            return
        await super().finish_job(
            job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress
        )
        if not finish and not released and not incr_score:
            await self._wake_from_head()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq's end of a job that never ran (aborted before it started, expired, unreadable, out of
        tries): guarded as ``finish_job``'s, so a retried job stays queued, another worker's claim is
        left alone, and a cancelled job is let go for good."""
        if self.queue_name != keys.QUEUE:
            await super().finish_failed_job(job_id, result_data)
            return
        await self._finish_guarded(job_id)

    async def _finish_guarded(self, job_id: str) -> None:
        if self._guarded_finish is None:
            self._guarded_finish = GuardedFinish(self.pool, self.queue_name, self.ctx.get("lease_token"))
        if await self._guarded_finish(job_id) is Finish.LEFT_QUEUED:
            await self._wake_from_head()

    async def _wake_from_head(self) -> None:
        """The job keeps its old place in the queue, behind where other workers' claims now start."""
        with contextlib.suppress(RedisError):  # they read from the head within a third of a lease
            await self.pool.publish(keys.queue_wake(self.queue_name), keys.WAKE_FROM_HEAD)

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        """The first SIGTERM or SIGINT gives running jobs the shutdown grace; a second one (Ctrl-C
        twice) stops now: running jobs are cancelled, and go back to the queue at once."""
        if self._stop_asked:
            log.warning("second signal: stopping now; running jobs go back to the queue", signal=signum.name)
            self.handle_sig(signum)
            return
        self._stop_asked = True
        log.info(
            "stopping: running jobs get the shutdown grace; signal again to stop now", signal=signum.name
        )
        super().handle_sig_wait_for_completion(signum)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._wakeups.wake()  # a slot is free: fill it now, not at the next poll

    async def close(self) -> None:
        await self._wakeups.aclose()
        await super().close()
