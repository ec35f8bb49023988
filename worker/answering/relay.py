"""One per worker process: sends the events of all its running jobs to Redis, one round trip a flush.

Jobs hand their events over without waiting (``add``, and ``watch`` for text still being
gathered). A background task sends what has gathered: at once when it has been quiet for a flush
interval, otherwise at most every ``flush_interval_ms``, or sooner when ``flush_chars`` of text wait.
A flush writes one entry per feed (a batch's log, or a scheduled run's) holding every event of that
feed since the last flush, and publishes the same bytes on the feed's channel: two commands however
many jobs and tokens it carries.

A failed send keeps its events, in order, for the next flush: events are a view of the jobs, not
their results, so a Redis outage must not fail a job. Readers drop the repeats a resend can make.

A job run under a checked lease (``worker.queue.leases``) has its events kept apart: a flush sends
them only while the job's lease is fresh, holds them (and asks for a renewal) while it is not, and
drops them once the job is lost to another worker, whose run numbers its own events from the log.
A job's end takes its waiting events (``take``) into the same Lua call that records its result.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import StreamConfig
from common.reconnect import describe, is_connection_loss
from common.replay import encode_entry
from worker.queue.leases import Lease
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


class Leases(Protocol):
    def state(self, job_id: str) -> Lease: ...
    def renew_soon(self) -> None: ...


@dataclass
class JobEvents:
    """One job's events under a checked lease, in order."""

    feed: Feed
    events: list[str] = field(default_factory=list)


def log_ttl_s(ttl_s: int) -> int:
    """An event log's expiry: the results' retention and a refresh period more, so it never goes first."""
    return ttl_s + math.ceil(min(EXPIRE_EVERY_S, ttl_s / 2))


class EventRelay:
    def __init__(self, redis: Redis, config: StreamConfig, ttl_s: int, leases: Leases | None = None) -> None:
        self._redis = redis
        self._config = config
        self._refresh_s = min(EXPIRE_EVERY_S, ttl_s / 2)
        self._log_ttl_s = log_ttl_s(ttl_s)
        self._interval_s = config.flush_interval_ms / 1000
        self._leases = leases
        self._waiting: dict[Feed, list[str]] = {}
        self._jobs: dict[str, JobEvents] = {}
        """Events of jobs under a checked lease, sent only while it is fresh."""
        self._in_flight: dict[str, JobEvents] = {}
        self._flight_over = asyncio.Event()
        self._sources: dict[TextSource, None] = {}
        """Jobs with text not yet sealed into events, in the order they started gathering."""
        self._chars = 0
        self._expired_at: dict[str, float] = {}
        self._expire_again: set[str] = set()
        self._last_flush = -float("inf")
        self._due = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised(self._run, "event relay")

    def add(self, feed: Feed, event_json: str, job_id: str | None = None) -> None:
        """Queue one event, already numbered, for the next flush; with ``job_id``, kept with that job's
        (its end takes them) and sent only while the job's lease is fresh."""
        if job_id is not None:
            job = self._jobs.get(job_id)
            if job is None:
                self._jobs[job_id] = JobEvents(feed, [event_json])
            else:
                job.events.append(event_json)
        else:
            waiting = self._waiting.get(feed)
            if waiting is None:
                self._waiting[feed] = [event_json]
            else:
                waiting.append(event_json)
        self._arm()

    async def take(self, job_id: str) -> list[str]:
        """The job's events not sent yet, for its end's own write; a send in flight with some of them
        is waited for first (what it fails to send comes back here), so none goes out twice."""
        while job_id in self._in_flight:
            await self._flight_over.wait()
        waiting = self._jobs.pop(job_id, None)
        return waiting.events if waiting else []

    def expire_again(self) -> None:
        """Redis lost its data: a log this relay wrote since may have been made anew, without an
        expiry. Every log it knows gets its expiry again at the next flush, events or none."""
        self._expire_again |= set(self._expired_at)
        self._expired_at.clear()
        self._flush_now()

    def discard(self, job_id: str) -> None:
        """Drop the job's events not sent yet: its run ended without them being its own to log (a
        stray copy, a run whose end another recorded, a job left to run again, which voids them)."""
        self._jobs.pop(job_id, None)

    def put_back(self, job_id: str, feed: Feed, events: list[str]) -> None:
        """Events ``take`` gave that the end did not write: they go out before the job's later ones."""
        if not events:
            return
        later = self._jobs.get(job_id)
        self._jobs[job_id] = JobEvents(feed, [*events, *(later.events if later else [])])
        self._arm()

    def held_lease(self) -> None:
        """A renewal round ended: events held for a stale lease may go now."""
        if self._jobs:
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
            jobs = self._fresh_jobs()
            if sending or jobs or self._expire_again:
                await self._send(sending, jobs)
            if self._closing:
                return

    def _fresh_jobs(self) -> dict[str, JobEvents]:
        """The checked jobs' events that may go now; a stale lease's wait, a lost one's are dropped."""
        if not self._jobs:
            return {}
        if self._leases is None:
            fresh_now, self._jobs = self._jobs, {}
            return fresh_now
        fresh: dict[str, JobEvents] = {}
        stale: dict[str, JobEvents] = {}
        for job_id, job in self._jobs.items():
            lease = self._leases.state(job_id)
            if lease is Lease.FRESH:
                fresh[job_id] = job
            elif lease is Lease.STALE:
                stale[job_id] = job
            else:
                log.warning("events dropped: the job's lease was lost", job_id=job_id, events=len(job.events))
        self._jobs = stale
        if stale:
            self._leases.renew_soon()  # the renewal round ends with held_lease, which flushes again
        return fresh

    async def _send(self, sending: dict[Feed, list[str]], jobs: dict[str, JobEvents]) -> None:
        self._in_flight = jobs
        self._flight_over.clear()
        try:
            await self._write(sending, jobs)
        except Exception as exc:
            # A reset under uvloop is a RuntimeError about a closed transport, not a RedisError.
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            count = sum(map(len, sending.values())) + sum(len(job.events) for job in jobs.values())
            if self._closing:
                log.warning("events lost", error=describe(exc), events=count)
                return
            log.warning(
                "publish failed; will retry", error=describe(exc), events=count, retry_in_s=RETRY_AFTER_S
            )
            # Redis may come back empty (restarted without persistence): the first send after it
            # sets every log's expiry again, or a log it makes anew would never expire.
            self._expired_at.clear()
            for feed, events in self._waiting.items():
                sending.setdefault(feed, []).extend(events)
            self._waiting = sending
            for job_id, job in jobs.items():
                self.put_back(job_id, job.feed, job.events)
            self._landed()
            await asyncio.sleep(RETRY_AFTER_S)  # Redis is away: back off rather than retry every flush
            self._arm()
        finally:
            self._landed()

    def _landed(self) -> None:
        """The send in flight is over: a job's end waiting for it takes what is left."""
        self._in_flight = {}
        self._flight_over.set()

    async def _write(self, waiting: dict[Feed, list[str]], jobs: dict[str, JobEvents]) -> None:
        sending = waiting
        if jobs:
            sending = {feed: list(events) for feed, events in waiting.items()}
            for job in jobs.values():
                sending.setdefault(job.feed, []).extend(job.events)
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
            again = self._expire_again - set(refreshed)
            for log_key in again:
                pipe.expire(log_key, self._log_ttl_s)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        self._expire_again -= again | set(refreshed)
        for log_key in [*refreshed, *again]:
            self._expired_at[log_key] = now
