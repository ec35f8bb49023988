"""THE shared control of calls in flight to a provider: one limit for every worker, fitted to the server.

Unset by default: each worker sends up to ``limits.concurrency`` calls and nothing more is read or
written (the gate's one Lua call sees the limit is absent). It is set when the server shows it
answers fewer calls at once than askq sends:

- **Queueing.** A first byte is late while other calls stream (``worker.answering.first_bytes``): the
  limit becomes about the number of calls streaming. The late call keeps waiting: it is in the
  server's queue, not lost.
- **Cut streams.** Streams end early, without a finish_reason, while another call waits for its
  first byte, twice within ``CUT_WINDOW_S``: a server that interrupts the running request for a
  waiting one (llama-cpp-python's ``--interrupt_requests``). The limit becomes 1.

Under a limit, every attempt takes a place (a call id in a sorted set, with an expiry renewed with
the job leases, so a dead worker's places free themselves) in the gate's admission, and gives it back
when it ends. When calls at the limit keep getting their first bytes quickly, the limit rises by one
(``RAISE_AFTER_S`` apart at least); back at ``limits.concurrency`` it is dropped. Lowering and
raising are compare-and-set on the limit, so several workers seeing the same thing change it once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.reconnect import describe, is_connection_loss
from worker.answering.first_bytes import MIN_LATE_S, FirstBytes
from worker.answering.in_flight_scripts import LOWER, RAISE, RENEW

log = structlog.get_logger(__name__)

IDLE_MS = 3_600_000
"""A limit no call used for an hour is forgotten: the server may have been restarted with more slots."""
RAISE_AFTER_S = 30.0
"""Least time between a change of the limit and a raise of it."""
RAISE_AFTER_QUICK = 8
"""Quick first bytes in a row, of calls admitted at the limit, before it is raised by one."""
CUT_WINDOW_S = 60.0
"""Two streams cut while another call waited, this close together, show a server that interrupts."""
PLACE_POLL_S = 0.25
"""Longest wait for a place before asking again (a place freed by this process wakes its waiters)."""
CUT_REASON = (
    "the provider ended a stream early when another request arrived: llama-cpp-python does this with "
    "--interrupt_requests True (its default); start it with --interrupt_requests False, or askq keeps "
    "one call in flight"
)


def new_call_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(eq=False)
class Call:
    """One call to the provider in flight from this process."""

    place: str | None
    """Its place under the limit, if one is in force."""
    limit: int | None
    """The limit it was admitted under."""
    at_limit: bool
    """It took the last free place: its first byte tells whether the limit could be higher."""
    ends_before: int = 0
    """Calls of this process that had ended when it was sent."""
    sent: float = field(default_factory=time.monotonic)
    first_byte: float | None = None
    timer: asyncio.TimerHandle | None = None


class InFlight:
    """One process's calls to one provider, and its part in the shared limit."""

    def __init__(self) -> None:
        self.calls: set[Call] = set()
        self.first_bytes = FirstBytes()
        self._freed = asyncio.Event()
        self._quick = 0
        self._ends = 0
        self._changed = time.monotonic()
        self._limit_seen = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis: Redis | None = None
        self.place_ms = 30_000
        self.cut_warned = False
        self._last_cut: float | None = None

    def bind(self, redis: Redis, endpoint: str, config: AskqConfig) -> None:
        """The Redis and provider this process's calls share a limit in (once; later binds are kept out)."""
        if self._redis is not None:
            return
        self._redis = redis
        self._endpoint = endpoint
        self._keys = (keys.provider_in_flight_limit(endpoint), keys.provider_in_flight_calls(endpoint))
        self._ceiling = config.limits.concurrency
        self.place_ms = round(config.limits.lease_s * 2 * 1000)
        self._lower = redis.register_script(LOWER)
        self._raise = redis.register_script(RAISE)
        self._renew = redis.register_script(RENEW)

    # -- calls ---------------------------------------------------------------------------------

    def begin(self, place: str | None, limit: int | None, used: int, send_in_s: float = 0.0) -> Call:
        """``send_in_s``: the wait for its send time (a pace's): its first byte is timed from then."""
        call = Call(
            place,
            limit,
            at_limit=limit is not None and used >= limit,
            ends_before=self._ends,
            sent=time.monotonic() + send_in_s,
        )
        self.calls.add(call)
        if limit is not None and limit != self._limit_seen:
            self._seen_change(limit)
        return call

    def flowing(self, besides: Call) -> int:
        """Calls of this process streaming now, besides ``besides``."""
        return sum(1 for call in self.calls if call is not besides and call.first_byte is not None)

    def waiting(self, besides: Call) -> int:
        """Calls of this process sent and still without a first byte, besides ``besides``."""
        return sum(1 for call in self._unanswered() if call is not besides)

    def _unanswered(self) -> list[Call]:
        """Calls sent and still without a first byte (not those still waiting for their send time:
        a paced call waits for no server)."""
        now = time.monotonic()
        return [call for call in self.calls if call.first_byte is None and call.sent <= now]

    def arrived(self, call: Call) -> None:
        """``call``'s first piece came; a run of quick ones at the limit raises it."""
        call.first_byte = time.monotonic()
        if call.timer is not None:
            call.timer.cancel()
        # No call ended while it waited: no slot freed for it, so it waited for no one.
        quick = self.first_bytes.arrived(call.first_byte - call.sent, alone=self._ends == call.ends_before)
        if call.place is None or call.limit is None or not call.at_limit:
            return
        self._quick = self._quick + 1 if quick else 0
        if self._quick >= RAISE_AFTER_QUICK and time.monotonic() - self._changed >= RAISE_AFTER_S:
            self._quick = 0
            self._spawn(self._raise_from(call.limit))

    def end(self, call: Call) -> None:
        self.calls.discard(call)
        self._ends += 1
        if call.timer is not None:
            call.timer.cancel()
        if call.place is not None:
            self._spawn(self._release(call.place))

    def watch(self, call: Call, on_queued: Callable[[], None], after_s: float | None = None) -> None:
        """Check ``call`` when its first byte is late: queueing lowers the limit, and ``on_queued`` is
        told (once) that it waits in the server's queue."""
        late_after = self.first_bytes.late_after_s()
        delay = max((late_after or MIN_LATE_S) - (time.monotonic() - call.sent), 0.01)
        call.timer = asyncio.get_running_loop().call_later(after_s or delay, self._check, call, on_queued)

    def _check(self, call: Call, on_queued: Callable[[], None]) -> None:
        if call.first_byte is not None or call not in self.calls:
            return
        waited = time.monotonic() - call.sent
        late_after = self.first_bytes.late_after_s()
        flowing = self.flowing(call)
        if not FirstBytes.queueing(waited, late_after, flowing):
            self.watch(call, on_queued, after_s=MIN_LATE_S)  # not yet known: look again later
            return
        self._quick = 0
        on_queued()
        if call.limit is None:
            # No limit in force when it was sent: set one to what streams, unless one is set now.
            self._spawn(
                self._lower_to(
                    max(flowing, 1), 0, f"a first byte waited {waited:.0f} s while {flowing} streamed"
                )
            )
        elif call.place is not None and all(other.place is not None for other in self.calls):
            # (Calls sent before the limit, still queued at the server, would explain the wait.)
            waiting = len(self._unanswered())
            new = max(call.limit - waiting, 1)
            self._spawn(
                self._lower_to(
                    new, call.limit, f"a first byte waited {waited:.0f} s at {call.limit} in flight"
                )
            )

    async def cut(self) -> bool:
        """A stream was cut short while another call waited. The second time within ``CUT_WINDOW_S``
        it is a pattern, a server that interrupts for a waiting request (once could be any cut): one
        call at a time from now on, set before the call is sent again (or it would be cut again).
        Returns whether it was taken so (then the call is sent again without spending its attempt)."""
        now = time.monotonic()
        first, self._last_cut = self._last_cut is None or now - self._last_cut > CUT_WINDOW_S, now
        if first:
            return False
        self._quick = 0
        await self._guarded(self._lower_to(1, -1, CUT_REASON, cut=True))
        return True

    async def wait_for_place(self) -> None:
        """Until this process frees a place, or a short while (another process may have freed one)."""
        try:
            async with asyncio.timeout(random.uniform(PLACE_POLL_S / 2, PLACE_POLL_S)):
                await self._freed.wait()
        except TimeoutError:
            pass

    def renew(self) -> None:
        """Lengthen this process's places (called with each round of lease renewals)."""
        places = [call.place for call in self.calls if call.place is not None]
        if places and self._redis is not None:
            self._spawn(self._guarded(self._renew(keys=self._keys[1:], args=[self.place_ms, *places])))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- Redis ---------------------------------------------------------------------------------

    async def _lower_to(self, new: int, seen: int, why: str, *, cut: bool = False) -> None:
        assert self._redis is not None
        if cut:
            reason = CUT_REASON
        else:
            reason = f"the provider answers {new} call{'s' if new != 1 else ''} at once ({why})"
        now, before = await self._lower(
            keys=[self._keys[0], keys.PROVIDERS], args=[new, reason, self._endpoint, IDLE_MS, seen]
        )
        if cut and not self.cut_warned:
            self.cut_warned = True  # once per process: every cut after it says the same
            log.warning(CUT_REASON)
        if before:
            self._seen_change(int(now))
            if not cut:
                was = int(before) or "no limit"
                log.warning(
                    f"the provider answers {new} call{'s' if new != 1 else ''} at once; "
                    f"askq now keeps {new} in flight (was {was})"
                )

    async def _raise_from(self, seen: int) -> None:
        assert self._redis is not None
        raised = await self._raise(keys=self._keys[:1], args=[seen, self._ceiling, IDLE_MS])
        if raised == b"0":
            log.info(f"the provider keeps up: askq no longer limits calls in flight (was {seen})")
        elif raised:
            self._seen_change(int(raised))
            log.info(f"the provider keeps up: askq now keeps {int(raised)} calls in flight (was {seen})")

    async def _release(self, place: str) -> None:
        assert self._redis is not None
        await self._guarded(self._redis.zrem(self._keys[1], place))
        self._freed.set()
        self._freed = asyncio.Event()

    def _seen_change(self, limit: int) -> None:
        self._limit_seen = limit
        self._changed = time.monotonic()
        self._quick = 0

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            log.warning("the shared in-flight limit could not be updated", error=describe(exc))
