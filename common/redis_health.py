"""Whether a Redis can keep askq's data: its eviction policy, its persistence, and whether it lost it.

- **Eviction.** Under any ``maxmemory-policy`` but ``noeviction`` a Redis at its limit deletes keys
  to make room, and askq's are candidates for every policy (``volatile-*`` too: they all carry the
  retention as TTL). A batch would lose records, jobs and counters silently, so producers and workers
  refuse such a Redis. The policy is read from ``INFO memory`` (which the documented ACL user may
  read) and else from ``CONFIG GET``; a Redis answering neither is used with a warning.
- **Persistence.** A Redis with neither AOF nor RDB snapshots loses every batch when it restarts:
  workers say so when they start.
- **Lineage.** ``keys.LINEAGE`` holds a random token, never expiring, written by the first submit or
  worker. A worker remembers it; when it is gone or another, Redis lost askq's data (a restart
  without persistence, a flush). The worker that notices marks the new token with the time, so that
  ``askq status`` can tell a batch lost with Redis's data from one never submitted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from common import keys
from common.errors import ConfigError

SAFE_POLICY = "noeviction"
TOKEN = "token"
CREATED_AT = "created_at"
LOST_AT = "lost_at"
"""When a worker found that the token it started with was gone (unix seconds)."""

# KEYS: the lineage hash. ARGV: a new token, now (unix s), the token the caller holds ('' if none).
# Writes the new token when there is none; when the caller held another one, Redis lost askq's data
# since, and the first to notice records when. Returns {token, created_at, lost_at or ''}.
_ENSURE = f"""
local token = redis.call('HGET', KEYS[1], '{TOKEN}')
if not token then
  token = ARGV[1]
  redis.call('HSET', KEYS[1], '{TOKEN}', token, '{CREATED_AT}', ARGV[2])
end
if ARGV[3] ~= '' and token ~= ARGV[3] then
  redis.call('HSETNX', KEYS[1], '{LOST_AT}', ARGV[2])
end
local at = redis.call('HMGET', KEYS[1], '{CREATED_AT}', '{LOST_AT}')
return {{token, at[1] or '', at[2] or ''}}
"""


@dataclass(frozen=True)
class MemorySettings:
    policy: str | None
    """``maxmemory-policy``; None when Redis would not say."""
    maxmemory_bytes: int | None


async def memory_settings(redis: Redis) -> MemorySettings:
    """The eviction policy and limit, from INFO (Redis 4 and later) or else CONFIG GET."""
    try:
        info = await redis.info("memory")
    except ResponseError:  # refused by an ACL, or renamed by a managed Redis
        info = {}
    if "maxmemory_policy" in info:
        return MemorySettings(str(info["maxmemory_policy"]), int(info.get("maxmemory", 0)))
    try:
        config = await redis.config_get("maxmemory*")
    except ResponseError:
        return MemorySettings(None, None)
    policy = config.get("maxmemory-policy")
    limit = config.get("maxmemory")
    return MemorySettings(policy, int(limit) if limit is not None else None)


def eviction_refusal(settings: MemorySettings) -> str | None:
    """Why askq must not use this Redis, or None."""
    if settings.policy is None or settings.policy == SAFE_POLICY or not settings.maxmemory_bytes:
        return None
    return (
        f"Redis's maxmemory-policy is {settings.policy}: at its maxmemory it would evict askq's jobs and "
        f"results without a word; set `maxmemory-policy {SAFE_POLICY}` (redis.conf, CONFIG SET, or your "
        "provider's parameter group), and watch its memory instead"
    )


def eviction_warning(settings: MemorySettings) -> str | None:
    """Worth a warning, not a refusal: an unknown policy, or one that evicts once a limit is set."""
    if settings.policy is None:
        return (
            "could not read Redis's maxmemory-policy (INFO and CONFIG refused): make sure it is "
            f"{SAFE_POLICY}, or a full Redis will evict askq's jobs"
        )
    if settings.policy != SAFE_POLICY and not settings.maxmemory_bytes:
        return (
            f"Redis's maxmemory-policy is {settings.policy}: harmless while maxmemory is 0, but it would "
            f"evict askq's jobs once a limit is set; set maxmemory-policy {SAFE_POLICY}"
        )
    return None


async def check_memory_policy(redis: Redis) -> str | None:
    """Raise ConfigError for a Redis that can evict askq's keys; a warning line, or None, otherwise."""
    settings = await memory_settings(redis)
    refusal = eviction_refusal(settings)
    if refusal is not None:
        raise ConfigError(refusal)
    return eviction_warning(settings)


async def persistence_warning(redis: Redis) -> str | None:
    """A warning when Redis keeps askq's data in memory only (neither AOF nor RDB snapshots)."""
    try:
        if int((await redis.info("persistence")).get("aof_enabled", 0)):
            return None
    except ResponseError:
        pass
    try:
        save = (await redis.config_get("save")).get("save")
    except ResponseError:
        return (
            "could not tell whether Redis persists its data (INFO persistence or CONFIG GET save "
            "refused): without AOF or snapshots a Redis restart loses every batch"
        )
    if save:
        return None
    return (
        "Redis has no persistence (appendonly no, save ''): a restart loses every batch; "
        "turn on AOF (see docs/production.md)"
    )


@dataclass(frozen=True)
class Lineage:
    token: str
    created_at: float
    lost_at: float | None
    """When a worker found askq's earlier data gone; None if no worker has."""


async def ensure_lineage(redis: Redis, *, held: str | None = None) -> Lineage:
    """The lineage, written if there is none; ``held`` is the token the caller had seen before."""
    script = redis.register_script(_ENSURE)
    token, created_at, lost_at = await script(
        keys=[keys.LINEAGE], args=[secrets.token_hex(8), f"{time.time():.3f}", held or ""]
    )
    return Lineage(_text(token), float(created_at or 0), float(lost_at) if lost_at else None)


async def read_lineage(redis: Redis) -> Lineage | None:
    """The lineage as it is; None when Redis holds none (askq never wrote here, or it was lost)."""
    fields = await redis.hgetall(keys.LINEAGE)  # type: ignore[misc]  # redis-py types sync and async alike
    token = fields.get(TOKEN.encode())
    if token is None:
        return None
    lost_at = fields.get(LOST_AT.encode())
    return Lineage(
        _text(token), float(fields.get(CREATED_AT.encode(), 0)), float(lost_at) if lost_at else None
    )


def data_lost(running: int | None) -> str:
    """A worker's one line when it finds that Redis lost askq's data under it."""
    jobs = "its running jobs" if running is None else f"{running} running job{'' if running == 1 else 's'}"
    return f"Redis lost askq's data (restarted without persistence?): {jobs} cannot be recorded"


def missing_batch(batch: str, lineage: Lineage | None) -> str:
    """Why a batch is not in Redis, as far as the lineage tells."""
    if lineage is None:
        return (
            f"unknown batch {batch!r}: this Redis holds no askq data at all (another REDIS_URL? or Redis "
            "lost its data: restarted without persistence?)"
        )
    if lineage.lost_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(lineage.lost_at))
        return (
            f"unknown batch {batch!r}: Redis lost askq's data (restarted without persistence?), found at "
            f"{when}; a batch submitted before then is gone: submit it again"
        )
    return f"unknown batch {batch!r} (never submitted, or expired after the retention)"


class LineageWatch:
    """A worker's memory of the lineage it started with: tells when Redis lost askq's data since."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.running: Callable[[], int] | None = None
        """How many jobs this worker is running, when its worker class can tell."""

    async def claim(self, redis: Redis) -> None:
        self.token = (await ensure_lineage(redis, held=self.token)).token

    async def lost(self, redis: Redis) -> bool:
        """True, once per loss, when the lineage this worker knew is gone: the new one is adopted."""
        held = self.token
        current = (await ensure_lineage(redis, held=held)).token
        if self.token != held:  # another look by this worker, at the same time, got there first
            return False
        self.token = current
        return held is not None and held != current


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
