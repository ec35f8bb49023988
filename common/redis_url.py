"""``REDIS_URL`` handling shared by every command: default, redaction and the unreachable message."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

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


TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
"""``rediss://`` query options, read alike by redis-py (producer) and, through here, by arq (worker)."""


def arq_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    # arq reads no query options; redis-py's from_url does, so one URL must mean the same to both.
    query = parse_qs(urlsplit(url).query)
    for option in TLS_OPTIONS:
        if option in query:
            setattr(settings, option, query[option][-1])
    if "ssl_check_hostname" in query:
        settings.ssl_check_hostname = query["ssl_check_hostname"][-1].lower() in ("true", "1", "yes")
    # Reconnect attempts are ours to report; arq's own default retries quietly for 5 s.
    settings.conn_retries = 3
    settings.conn_retry_delay = 1
    return settings


def unreachable_message(url: str, reason: str) -> str:
    return (
        f"cannot reach Redis at {redact(url)} ({reason}); start one with "
        "`redis-server` or `docker compose up -d redis`, or set REDIS_URL"
    )
