"""Open the producer's Redis connection, turning 'cannot connect' into one clear line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import RedisUnavailableError
from common.redis_url import redis_url, unreachable_message
from common.redis_wire import pack_with_hiredis
from common.secrets import redact_secrets

CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
"""Longer than any blocking read askq makes (``tail`` blocks 1 s at most), so only a dead link trips it:
a connection silently dropped while a laptop slept is noticed and reopened instead of hanging."""


@asynccontextmanager
async def connect(url: str | None = None) -> AsyncIterator[Redis]:
    url = url or redis_url()
    try:
        redis = pack_with_hiredis(
            Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                health_check_interval=30,
            )
        )
    except ValueError as exc:
        raise RedisUnavailableError(unreachable_message(url, f"bad URL: {exc}")) from None
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise RedisUnavailableError(unreachable_message(url, _reason(exc))) from None
    try:
        yield redis
    finally:
        await redis.aclose()


def _reason(exc: BaseException) -> str:
    text = redact_secrets(str(exc).split("\n")[0]) or type(exc).__name__
    return text if len(text) < 160 else text[:157] + "..."
