"""``REDIS_URL`` handling shared by every command: default, redaction and the unreachable message."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from arq.connections import RedisSettings

REDIS_URL_ENV = "REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379"


def redis_url() -> str:
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def arq_settings(url: str) -> RedisSettings:
    # Reconnect attempts are ours to report; arq's own default retries quietly for 5 s.
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 3
    settings.conn_retry_delay = 1
    return settings


def unreachable_message(url: str, reason: str) -> str:
    return (
        f"cannot reach Redis at {redact(url)} ({reason}); start one with "
        "`redis-server` or `docker compose up -d redis`, or set REDIS_URL"
    )
