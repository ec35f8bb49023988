"""What every attempt passes before it calls the provider: a batch halt, a shared cooldown, a pace.

- **Halt.** A 401 for one job means the next thousand would get one too, each a wasted call
  counted against the key. The first 401 sets the batch's halt key; every later attempt of the
  batch fails at once with the same advice. ``askq retry`` clears it.
- **Cooldown.** A 429 with ``Retry-After`` is the provider asking the whole client to wait, not
  just the one request. The wait is stored in Redis, so every worker's next attempt holds off
  until it passes, instead of each one hitting its own 429 in a stampede.

- **Outage.** While the provider cannot be reached (``worker.answering.outage``), attempts wait for
  it instead of calling, spending no attempt.
- **Calls in flight.** Under the shared in-flight limit (``worker.answering.in_flight``), an attempt
  takes a place, or waits for one.
- **Pace.** With ``provider.requests_per_minute`` set, attempts are spaced evenly at that rate
  across every worker (GCRA on Redis's clock): each admission reserves the next send time, so the
  provider's limit is met without a stream of 429s and retries. With ``provider.tokens_per_minute``,
  a chat call also reserves its tokens (its prompt's estimate plus ``max_tokens``) on a second GCRA
  with a burst of ``rate_burst_s``, and gives back what it did not use when it ends
  (``worker.answering.spend``). A dimension jobs.yaml leaves at 0 is paced from the provider's
  ``x-ratelimit-*`` headers, once a first call (the probe) has brought them.

All of them are one Lua call per attempt. Without a pace, an attempt only reads, and what it reads
changes rarely, so each process remembers an open gate for ``OPEN_FOR_S`` (``GateMemory``): a halt,
cooldown, outage or limit set by another process reaches it that much later, one set by its own
attempts at once, and a gate that is not plainly open is never remembered, so clearing one
(``askq retry``) takes effect at once. A provider known to send no rate-limit headers is plainly
open: its calls keep this path.
They are advice: while Redis is away (a restart) the gate stays open rather than fail a job that
could be answered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.errors import (
    BatchHaltedError,
    FatalProviderError,
    ProviderError,
    ProviderUnreachableError,
    RetryableProviderError,
)
from common.reconnect import describe, is_connection_loss
from worker.answering.admission import Admission, GateMemory
from worker.answering.gate_scripts import ADMIT, COOL_DOWN, REACHABLE, UNREACHABLE
from worker.answering.in_flight import new_call_id
from worker.answering.outage import HELD_FOR_S, Outage
from worker.answering.pacing import LEARNED_BURST_SHARE, MARGIN, PROBE_MS, RATE_LIMITS_KEPT_MS
from worker.answering.provider import ChatRequest
from worker.answering.spend import CallSpend, Reservation

log = structlog.get_logger(__name__)

HALTING_STATUS = 401
COOLDOWN_STATUS = 429
MAX_COOLDOWN_S = 60.0
"""Longest shared hold-off: a stray header must not stall every worker for an hour."""
IDLE_PROVIDERS_MS = 3_600_000
"""How long ``askq status`` keeps looking at a provider that had an outage or a limit."""
NOT_SENT = "not sent: an earlier job of this batch was refused ({reason}); fix it, then `askq retry {batch}`"


class ProviderGate:
    def __init__(
        self, redis: Redis, batch: str, endpoint: str, config: AskqConfig, memory: GateMemory | None = None
    ) -> None:
        """``memory``: the process's ``GateMemory``; without it, every attempt reads Redis (and the
        outage and in-flight accounting are this gate's own)."""
        self._redis = redis
        self._batch = batch
        self._endpoint = endpoint
        self._memory = memory
        shared = memory or GateMemory(open_for_s=0)
        self.outage = shared.outage
        self.in_flight = shared.in_flight
        self.in_flight.bind(redis, endpoint, config)
        self.pacing = shared.pacing
        self.pacing.bind(redis)
        self._keys = [
            keys.batch_halt(batch),
            keys.provider_cooldown(endpoint),
            keys.provider_pace(endpoint),
            keys.provider_outage(endpoint),
            keys.provider_in_flight_limit(endpoint),
            keys.provider_in_flight_calls(endpoint),
            keys.PROVIDERS,
            keys.provider_token_pace(endpoint),
            keys.provider_rate_limits(endpoint),
            keys.provider_probe(endpoint),
        ]
        provider = config.provider
        rpm, tpm = provider.requests_per_minute, provider.tokens_per_minute
        self._interval_ms = 60_000 / rpm if rpm else 0
        self._per_token_ms = 60_000 / tpm if tpm else 0
        self._burst_ms = round(provider.rate_burst_s * 1000)
        self._learn = ("" if rpm else "r") + ("" if tpm else "t")
        self._max_tokens = provider.max_tokens
        self._ttl_s = config.retention.ttl_s
        self._admit = redis.register_script(ADMIT)
        self._cool_down = redis.register_script(COOL_DOWN)
        self._unreachable = redis.register_script(UNREACHABLE)
        self._reachable = redis.register_script(REACHABLE)

    def reservation(self, request: ChatRequest) -> Reservation:
        """What ``request`` asks of the token pace (estimated only when a pace needs it)."""
        return Reservation(request, self.pacing.prompt_tokens, self._max_tokens)

    def spend(self, admission: Admission, reservation: Reservation | None) -> CallSpend:
        """The attempt's part in the token pace and in learning the provider's limits."""
        learns = reservation is not None and bool(self._learn)
        return CallSpend(
            self.pacing,
            self._endpoint,
            reservation,
            admission.reserved,
            admission.per_token_ms,
            admission.probe,
            learns,
            admission.send_in_s,
        )

    async def admit(self, reservation: Reservation | None = None) -> Admission:
        """When this attempt may call; raises the batch's halt as its error. ``reservation``: a chat
        call's, which the token pace takes (learned or configured); None for a call that takes none."""
        reserving = reservation is not None
        paced = self._interval_ms or (reserving and self._per_token_ms)
        memory = self._memory if not paced else None  # a pace reserves every attempt
        if memory is not None and memory.is_open(self._batch, self._endpoint, reserving):
            return Admission()
        generation = memory.generation if memory is not None else 0
        call_id = new_call_id()
        try:
            args = self._admit_args(call_id, reservation)
            # Nothing to reserve or pace (the common case): a shorter call, as cheap as before paces.
            short = not args[5] and not self._interval_ms
            reply = await self._admit(
                keys=self._keys[:7] if short else self._keys, args=args[:5] if short else args
            )
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):  # uvloop's reset: RuntimeError
                raise
            log.warning("provider gate unreadable; calling anyway", error=describe(exc))
            return Admission()
        admission = self._admission(list(reply), call_id)
        if memory is not None and admission == Admission():
            memory.saw_open(self._batch, self._endpoint, generation, reserving)
        return admission

    def _admit_args(self, call_id: str, reservation: Reservation | None) -> list[Any]:
        # A provider this process has seen send no rate-limit headers has nothing to learn: its
        # calls read no learned limits, and need no estimate unless jobs.yaml paces tokens.
        learn = "" if self.pacing.sends_none(self._endpoint) else self._learn
        reserving = reservation is not None and (self._per_token_ms or learn)
        tokens = reservation.tokens if reservation is not None and reserving else 0
        return [
            self._interval_ms,
            call_id,
            self.in_flight.place_ms,
            self._endpoint,
            IDLE_PROVIDERS_MS,
            tokens,
            self._per_token_ms,
            self._burst_ms,
            learn,
            MARGIN,
            LEARNED_BURST_SHARE,
            PROBE_MS,
            RATE_LIMITS_KEPT_MS,
            "1" if reservation is not None else "0",
        ]

    def _admission(self, fields: list[Any], call_id: str) -> Admission:
        reason, cooldown_ms, send_in_ms, *rest = fields + [b""] * (13 - len(fields))
        if reason is not None:
            message = NOT_SENT.format(reason=reason.decode(), batch=self._batch)
            raise BatchHaltedError(message, status_code=HALTING_STATUS)
        since_ms, age_ms, error, limit, place, used, reserved, per_token_ms, probe, paced = rest
        return Admission(
            float(cooldown_ms) / 1000,
            float(send_in_ms) / 1000,
            outage=Outage(int(since_ms), int(age_ms), error.decode()) if since_ms else None,
            limit=int(limit) if limit else None,
            place=call_id if place == b"1" else None,
            used=int(used or 0),
            reserved=int(reserved or 0),
            per_token_ms=float(per_token_ms or 0),
            probe=call_id if probe == b"1" else None,
            learning=probe == b"wait",
            paced=paced == b"1",
        )

    async def unreachable(self, error: ProviderUnreachableError) -> Outage:
        """Tell every worker the provider cannot be reached; the outage as it stands (since when)."""
        if self._memory is not None:
            self._memory.forget()  # this process's next attempts see it at once
        try:
            since_ms, age_ms, _ = await self._unreachable(
                keys=[self._keys[3], keys.PROVIDERS],
                args=[str(error), round(HELD_FOR_S * 1000), self._endpoint, IDLE_PROVIDERS_MS],
            )
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            log.warning("provider outage not shared", error=describe(exc))
            return Outage(round(time.time() * 1000), 0, str(error))
        return Outage(int(since_ms), int(age_ms), str(error))

    async def reachable(self, sent_at: float) -> None:
        """A call sent at ``sent_at`` (monotonic) got through: if this process knew of an outage when it
        was sent, the outage is over for every worker."""
        if not self.outage.proves_back(sent_at):
            return
        try:
            lasted_ms = await self._reachable(keys=self._keys[3:4])
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
                raise
            log.warning("provider outage's end not shared", error=describe(exc))
            lasted_ms = None
        self.outage.ended(int(lasted_ms) / 1000 if lasted_ms is not None else None)

    async def refused(self, error: ProviderError) -> None:
        """Tell every worker what the provider's refusal means for them."""
        share = self._share(error)
        if share is None:
            return  # a 5xx, a timeout: nothing for the others to hold back for
        try:
            await share
        except Exception as exc:
            if not (isinstance(exc, RedisError) or is_connection_loss(exc)):  # uvloop's reset: RuntimeError
                raise
            log.warning("provider refusal not shared", error=describe(exc))
        finally:
            # After the write: a reading sent before it can no longer be remembered as open.
            if self._memory is not None:
                self._memory.forget()

    def _share(self, error: ProviderError) -> Awaitable[object] | None:
        """The write that shares a halt (401) or a cooldown (429 with Retry-After); None for others."""
        if isinstance(error, FatalProviderError) and error.status_code == HALTING_STATUS:
            return self._redis.set(self._keys[0], str(error), ex=self._ttl_s, nx=True)
        if isinstance(error, RetryableProviderError) and error.status_code == COOLDOWN_STATUS:
            wait_ms = round(min(error.retry_after_s or 0.0, MAX_COOLDOWN_S) * 1000)
            if wait_ms > 0:
                return self._cool_down(
                    keys=[self._keys[1], keys.PROVIDERS], args=[wait_ms, self._endpoint, IDLE_PROVIDERS_MS]
                )
        return None
