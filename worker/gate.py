"""What every attempt passes before it calls the provider: a batch halt, and a shared cooldown.

- **Halt.** A 401 for one job means the next thousand would get one too, each a wasted call
  counted against the key. The first 401 sets the batch's halt key; every later attempt of the
  batch fails at once with the same advice. ``askq retry`` clears it.
- **Cooldown.** A 429 with ``Retry-After`` is the provider asking the whole client to wait, not
  just the one request. The wait is stored in Redis, so every worker's next attempt holds off
  until it passes, instead of each one hitting its own 429 in a stampede.

Both are read in one pipelined round trip per attempt. Both are advice: while Redis is away (a
restart) the gate stays open rather than fail a job that could be answered.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common import keys
from common.errors import FatalProviderError, ProviderError, RetryableProviderError

log = structlog.get_logger(__name__)

HALTING_STATUS = 401
COOLDOWN_STATUS = 429
MAX_COOLDOWN_S = 60.0
"""Longest shared hold-off: a stray header must not stall every worker for an hour."""
NOT_SENT = "not sent: an earlier job of this batch was refused ({reason}); fix it, then `askq retry {batch}`"

# KEYS: cooldown. ARGV: ms. Lengthens the cooldown, never shortens it.
_COOL_DOWN = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
"""


class ProviderGate:
    def __init__(self, redis: Redis, batch: str, endpoint: str, *, ttl_s: int) -> None:
        self._redis = redis
        self._batch = batch
        self._halt = keys.batch_halt(batch)
        self._cooldown = keys.provider_cooldown(endpoint)
        self._ttl_s = ttl_s
        self._cool_down = redis.register_script(_COOL_DOWN)

    async def wait_s(self) -> float:
        """Seconds to hold off before calling (0: go); raises the batch's halt as this attempt's error."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._halt)
                pipe.pttl(self._cooldown)
                reason, cooldown_ms = await pipe.execute()
        except RedisError as exc:
            log.warning("provider gate unreadable; calling anyway", error=str(exc))
            return 0.0
        if reason is not None:
            message = NOT_SENT.format(reason=reason.decode(), batch=self._batch)
            raise FatalProviderError(message, status_code=HALTING_STATUS)
        return max(int(cooldown_ms), 0) / 1000

    async def refused(self, error: ProviderError) -> None:
        """Tell every worker what the provider's refusal means for them."""
        try:
            await self._share(error)
        except RedisError as exc:
            log.warning("provider refusal not shared", error=str(exc))

    async def _share(self, error: ProviderError) -> None:
        if isinstance(error, FatalProviderError) and error.status_code == HALTING_STATUS:
            await self._redis.set(self._halt, str(error), ex=self._ttl_s, nx=True)
        elif isinstance(error, RetryableProviderError) and error.status_code == COOLDOWN_STATUS:
            wait_ms = round(min(error.retry_after_s or 0.0, MAX_COOLDOWN_S) * 1000)
            if wait_ms > 0:
                await self._cool_down(keys=[self._cooldown], args=[wait_ms])
