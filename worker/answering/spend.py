"""What a chat call spends of the provider's limits: its token reservation, settled when its usage
comes, and what its response's rate-limit headers teach every worker.

- **Reservation.** A call reserves, in the gate's admission, what the provider counts at send: its
  prompt's estimate (``worker.answering.prompt_tokens``) plus the completion it may use
  (``max_completion_tokens`` or ``max_tokens``). When it ends, ``SETTLE`` gives back what it did not
  use, signed (an estimate that was low takes the rest): a refusal with a status before any byte
  used nothing; an answer used its reported prompt and completion; a stream broken mid-way, or an
  answer without reported usage, keeps its whole reservation (the provider may have counted it).
- **Learning.** With no limit configured in jobs.yaml for a dimension, the provider's
  ``x-ratelimit-*`` headers set it: ``LEARN`` writes them to Redis for every worker (when they
  change, and once a minute while they hold, to keep them), and the gate paces at ``MARGIN`` of them.
  The first call to a provider nothing is known of goes alone (the probe); the others wait for its
  headers. A provider that sends none is written down as such, and keeps the gate's no-Redis path.
- **Sync.** The headers' ``reset-tokens`` says how far ahead the provider's own pace is booked: the
  settle moves askq's pace at least that far ahead (never back), so another client on the same key,
  or a limit lowered, slows askq down rather than bring 429s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.reconnect import describe, is_connection_loss
from common.usage import Usage
from worker.answering.pace_scripts import FREE_PROBE, LEARN, SETTLE
from worker.answering.prompt_tokens import PromptReservation, PromptTokens
from worker.answering.provider import ChatRequest
from worker.answering.rate_headers import NO_LIMITS, RateLimits, rate_limits

log = structlog.get_logger(__name__)

MARGIN = 0.97
"""The share of a learned limit askq paces at: a request's arrival varies by a few ms, and the
provider's own count of a prompt may differ from askq's estimate."""
LEARNED_BURST_SHARE = 0.9
"""The share of the provider's token bucket (read from its headers) askq lets go at once."""
PROBE_MS = 30_000
"""How long the probe holds the others back at most: a probe lost with its worker frees itself."""
RATE_LIMITS_KEPT_MS = 3_600_000
"""Learned limits no worker has seen for an hour are forgotten: the next call probes again."""
TELL_AGAIN_S = 60.0
"""How often a process writes limits it sees unchanged: what keeps them from being forgotten."""
PROVIDERS_KEPT_MS = 3_600_000


class Reservation:
    """What one chat request asks of the token pace, estimated only if a pace may need it."""

    def __init__(self, request: ChatRequest, prompt_tokens: PromptTokens, max_tokens: int) -> None:
        self._request = request
        self._prompt_tokens = prompt_tokens
        params = request.params
        completion = params.get("max_completion_tokens", params.get("max_tokens"))
        # A line's own params are the user's: anything but a positive count reserves the default.
        if isinstance(completion, bool) or not isinstance(completion, int) or completion <= 0:
            completion = max_tokens
        self.completion: int = completion

    @cached_property
    def prompt(self) -> PromptReservation:
        return self._prompt_tokens.reserve(self._request.messages, self._request.model)

    @property
    def tokens(self) -> int:
        return self.prompt.tokens + self.completion


@dataclass(frozen=True)
class Told:
    limits: RateLimits
    at: float


class Pacing:
    """One worker process's part in the token pace and the learned limits: its prompt calibration,
    what it last wrote of each provider's headers, and the writes in progress."""

    def __init__(self) -> None:
        self.prompt_tokens = PromptTokens()
        self._told: dict[str, Told] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis: Redis | None = None

    def bind(self, redis: Redis) -> None:
        if self._redis is not None:
            return
        self._redis = redis
        self._settle = redis.register_script(SETTLE)
        self._learn = redis.register_script(LEARN)
        self._free_probe = redis.register_script(FREE_PROBE)

    def news(self, endpoint: str, limits: RateLimits, *, probe: bool) -> bool:
        """Whether what a response's headers said should be written: it is the probe's, it differs
        from what this process last wrote, or that was a while ago."""
        told = self._told.get(endpoint)
        now = time.monotonic()
        if probe or told is None or told.limits != limits or now - told.at > TELL_AGAIN_S:
            self._told[endpoint] = Told(limits, now)
            return True
        return False

    async def learn(self, endpoint: str, limits: RateLimits, probe_id: str | None) -> None:
        assert self._redis is not None
        burst = limits.tokens_burst_ms
        changed = await self._learn(
            keys=[keys.provider_rate_limits(endpoint), keys.PROVIDERS, keys.provider_probe(endpoint)],
            args=[
                _or_blank(limits.requests),
                _or_blank(limits.tokens),
                _or_blank(burst),
                "0" if limits.known else "1",
                endpoint,
                PROVIDERS_KEPT_MS,
                probe_id or "",
                RATE_LIMITS_KEPT_MS,
            ],
        )
        if changed == b"1":
            log.info(learned_line(endpoint, limits))

    async def settle(self, endpoint: str, given: int, per_token_ms: float, ahead_ms: int) -> None:
        assert self._redis is not None
        await self._settle(keys=[keys.provider_token_pace(endpoint)], args=[given, per_token_ms, ahead_ms])

    async def free_probe(self, endpoint: str, probe_id: str) -> None:
        assert self._redis is not None
        await self._free_probe(keys=[keys.provider_probe(endpoint)], args=[probe_id])

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Off the call's path: its answer does not wait for its bookkeeping."""
        task = asyncio.create_task(_guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Until the writes spawned so far are done (a test's synchronisation, a worker's stop)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.drain()


def configured_pace(config: AskqConfig) -> str:
    """What paces this worker's calls, as its start line says."""
    provider = config.provider
    parts = []
    for value, name in ((provider.requests_per_minute, "requests"), (provider.tokens_per_minute, "tokens")):
        if value:
            parts.append(f"{value:,} {name}/min (provider.{name}_per_minute in jobs.yaml)")
        else:
            parts.append(f"{name}: from the provider's x-ratelimit headers, if it sends them")
    return "; ".join(parts)


def learned_line(endpoint: str, limits: RateLimits) -> str:
    if not limits.known:
        return f"{endpoint} sends no rate-limit headers: askq paces only what jobs.yaml sets"
    paced = [
        f"{round(limit * MARGIN):,} {unit}/min"
        for limit, unit in ((limits.requests, "requests"), (limits.tokens, "tokens"))
        if limit is not None
    ]
    return (
        f"askq paces {endpoint} from its rate-limit headers where jobs.yaml sets no limit: "
        f"{' and '.join(paced)} ({MARGIN:.0%} of what they give)"
    )


class CallSpend:
    """One attempt's part: what it reserved, what its response said, its settle when it ends."""

    def __init__(
        self,
        pacing: Pacing,
        endpoint: str,
        reservation: Reservation | None,
        reserved: int,
        per_token_ms: float,
        probe_id: str | None,
        learns: bool,
    ) -> None:
        self._pacing = pacing
        self._endpoint = endpoint
        self._reservation = reservation
        self._reserved = reserved
        self._per_token_ms = per_token_ms
        self._probe_id = probe_id
        self._learns = learns
        self._used: int | None = None
        """Tokens the call is known to have used; None: unknown, the reservation is kept."""
        self._completion: int | None = None
        self._limits = NO_LIMITS
        self._heard_at: float | None = None

    @property
    def listens(self) -> bool:
        """Whether the response's headers matter: to learn from, or to keep the token pace in step."""
        return self._learns or self._reserved > 0

    def on_headers(self, headers: Mapping[str, str], status: int) -> None:
        """The response's headers, before its body: a 200's, or a refusal's."""
        self._heard_at = time.monotonic()
        self._limits = rate_limits(headers)
        if status >= 400:
            self._used = 0  # refused before any byte: the provider took nothing
        if not self._learns and self._probe_id is None:
            return
        # A refusal without headers says nothing of the provider's (a proxy's 502, a fault).
        heard = self._limits.known or status < 300 or self._probe_id is not None
        if heard and self._pacing.news(self._endpoint, self._limits, probe=self._probe_id is not None):
            self._pacing.spawn(self._pacing.learn(self._endpoint, self._limits, self._probe_id))
            self._probe_id = None  # freed by its LEARN

    def answered(self, usage: Usage) -> None:
        if usage.estimated:
            return  # no reported usage: the provider's count is unknown, the reservation is kept
        self._used = usage.prompt_tokens + usage.completion_tokens
        self._completion = usage.completion_tokens
        if self._reservation is not None:
            self._pacing.prompt_tokens.reported(self._reservation.prompt, usage)

    def end(self) -> None:
        """Give back what was not used; free a probe that learned nothing."""
        if self._probe_id is not None:
            self._pacing.spawn(self._pacing.free_probe(self._endpoint, self._probe_id))
        if self._reserved <= 0:
            return
        given = self._reserved - self._used if self._used is not None else 0
        ahead_ms = self._provider_ahead_ms()
        if given != 0 or ahead_ms >= 0:
            self._pacing.spawn(self._pacing.settle(self._endpoint, given, self._per_token_ms, ahead_ms))

    def _provider_ahead_ms(self) -> int:
        """How far ahead the provider's token pace is booked now, by its headers (-1: unknown): their
        reset, less the time since, less what the provider gave back of this call's reservation."""
        limits = self._limits
        if limits.reset_tokens_ms is None or limits.tokens is None or self._heard_at is None:
            return -1
        ahead = limits.reset_tokens_ms - (time.monotonic() - self._heard_at) * 1000
        if self._completion is not None and self._reservation is not None:
            ahead -= max(self._reservation.completion - self._completion, 0) * 60_000 / limits.tokens
        return round(ahead) if ahead > 0 else -1


def _or_blank(value: int | None) -> str:
    return "" if value is None else str(value)


async def _guarded(work: Coroutine[Any, Any, Any]) -> None:
    try:
        await work
    except Exception as exc:
        if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
            raise
        log.warning("the shared rate limits could not be updated", error=describe(exc))
