"""One worker process's part in the limits learned from the provider's headers and in the token pace:
its prompt calibration, what it last wrote of each provider's headers, the probe it has out, and the
writes in progress (``worker.answering.spend`` is one call's part).

With no limit configured in jobs.yaml for a dimension, the provider's ``x-ratelimit-*`` headers set
it: ``LEARN`` writes them to Redis for every worker (when they change, and once a minute while they
hold, to keep them), and the gate paces at ``MARGIN`` of them. The first call to a provider nothing
is known of goes alone (the probe); the others wait for its headers. A provider that sends none is
written down as such, and keeps the gate's no-Redis path.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.reconnect import describe, is_connection_loss
from worker.answering.in_flight import PLACE_POLL_S
from worker.answering.pace_scripts import FREE_PROBE, LEARN, SETTLE
from worker.answering.prompt_tokens import PromptTokens
from worker.answering.rate_headers import RateLimits

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
FIRST_LEARNING_POLL_S = 0.02
"""A call waiting for another process's probe first asks again this soon, then twice as late each
time, up to ``PLACE_POLL_S``: a quick provider's probe is back in milliseconds, a slow one's in
seconds."""
OWN_PROBE_WAIT_S = 5.0
"""A call waiting for its own process's probe is woken when it is done: it asks again only this
often, in case the wake-up was missed."""


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
        self._learned = asyncio.Event()
        self._probes = 0
        """This process's probes out: its calls waiting for one are woken when it is done."""

    async def learned(self, polls: int) -> None:
        """Until this process's probe is done, or until it is time to ask again: the ``polls``-th
        time, sooner at first (another process's probe is only seen by asking)."""
        if self._probes:
            wait_s = OWN_PROBE_WAIT_S
        else:
            wait_s = min(FIRST_LEARNING_POLL_S * 2 ** min(polls - 1, 8), PLACE_POLL_S) * random.uniform(
                0.5, 1
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._learned.wait(), wait_s)

    def probing(self) -> None:
        """One of this process's calls went as the probe."""
        self._probes += 1

    def _probe_done(self) -> None:
        self._probes = max(self._probes - 1, 0)
        self._learned.set()  # this process's calls waiting for its probe ask again at once
        self._learned = asyncio.Event()

    def bind(self, redis: Redis) -> None:
        if self._redis is not None:
            return
        self._redis = redis
        self._settle = redis.register_script(SETTLE)
        self._learn = redis.register_script(LEARN)
        self._free_probe = redis.register_script(FREE_PROBE)

    def sends_none(self, endpoint: str) -> bool:
        """Whether the provider's last answer this process heard had no rate-limit headers."""
        told = self._told.get(endpoint)
        return told is not None and not told.limits.known

    def news(self, endpoint: str, limits: RateLimits, *, probe: bool) -> bool:
        """Whether what a response's headers said should be written: it is the probe's, it differs
        from what this process last wrote, or that was a while ago."""
        told = self._told.get(endpoint)
        now = time.monotonic()
        # What is left changes with every answer; the limits, rarely: only they are news.
        same = told is not None and (told.limits.requests, told.limits.tokens) == (
            limits.requests,
            limits.tokens,
        )
        if probe or not same or told is None or now - told.at > TELL_AGAIN_S:
            self._told[endpoint] = Told(limits, now)
            return True
        return False

    async def learn(self, endpoint: str, limits: RateLimits, probe_id: str | None) -> None:
        try:
            await self._write(endpoint, limits, probe_id)
        finally:
            if probe_id is not None:
                self._probe_done()

    async def _write(self, endpoint: str, limits: RateLimits, probe_id: str | None) -> None:
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
        try:
            await self._free_probe(keys=[keys.provider_probe(endpoint)], args=[probe_id])
        finally:
            self._probe_done()

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


def _or_blank(value: int | None) -> str:
    return "" if value is None else str(value)


async def _guarded(work: Coroutine[Any, Any, Any]) -> None:
    try:
        await work
    except Exception as exc:
        if not (isinstance(exc, RedisError) or is_connection_loss(exc)):
            raise
        log.warning("the shared rate limits could not be updated", error=describe(exc))
