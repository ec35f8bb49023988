"""Open the producer's Redis connection, turning 'cannot connect' into one clear line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import ConfigError
from common.redis_url import check_url, connection_error, redact, redis_url
from common.redis_wire import pack_with_hiredis
from common.secrets import redact_secrets

CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 30.0
"""Longer than any blocking read askq makes (``tail`` blocks 1 s at most), so only a dead link trips it:
a connection silently dropped while a laptop slept is noticed and reopened instead of hanging."""


@asynccontextmanager
async def connect(url: str | None = None) -> AsyncIterator[Redis]:
    url = check_url(url or redis_url())
    try:
        redis = pack_with_hiredis(
            Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                health_check_interval=30,
            )
        )
    except (ValueError, TypeError) as exc:  # a query option of the wrong type: ?db=x, ?socket_timeout=
        raise ConfigError(f"REDIS_URL={redact(url)}: {redact_secrets(str(exc))}") from None
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise connection_error(url, exc) from None
    try:
        yield redis
    finally:
        await redis.aclose()
