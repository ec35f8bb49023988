"""``REDIS_URL`` handling shared by every command: default, checks, redaction and the one-line messages."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from arq.connections import RedisSettings
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import ConfigError, RedisAuthError, RedisUnavailableError
from common.secrets import error_line, redact_secrets

REDIS_URL_ENV = "REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379"
SCHEMES = ("redis", "rediss", "unix")


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


TLS_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
TLS_OPTIONS = (*TLS_FILE_OPTIONS, "ssl_check_hostname")
"""``rediss://`` query options, read alike by redis-py (producer) and, through here, by arq (worker)."""
_DATABASE_PATH = re.compile(r"^(/\d*)?$")


def check_url(url: str) -> str:
    """The URL, or a ConfigError naming what is wrong with it: redis-py would raise a TypeError
    for a TLS option on a plain ``redis://`` URL and guess at an unknown scheme, and arq would read
    a database other than redis-py's from a path like ``/2/``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{REDIS_URL_ENV}={redact_secrets(url)}: not a URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"{REDIS_URL_ENV}={redact(url)}: expected a redis://, rediss:// (TLS) or unix:// URL, "
            f"got scheme {parts.scheme or '(none)'!r}"
        )
    given = [option for option in TLS_OPTIONS if option in parse_qs(parts.query)]
    if given and parts.scheme != "rediss":
        raise ConfigError(
            f"{REDIS_URL_ENV}={redact(url)}: {given[0]} is a TLS option and needs a rediss:// URL "
            f"({parts.scheme}:// is not encrypted)"
        )
    database = parse_qs(parts.query).get("db", ["0"])[-1]
    if not database.isdigit():
        raise ConfigError(f"{REDIS_URL_ENV}={redact(url)}: db must be a database number, got {database!r}")
    if parts.scheme != "unix" and not _DATABASE_PATH.match(parts.path):
        raise ConfigError(
            f"{REDIS_URL_ENV}={redact(url)}: the path must be a database number, as in /0, got {parts.path!r}"
        )
    return url


def arq_settings(url: str) -> RedisSettings:
    parts = urlsplit(check_url(url))
    # redis-py reads a bare "/" as database 0; arq would fail on it.
    settings = RedisSettings.from_dsn(urlunsplit(parts._replace(path=parts.path.rstrip("/"))))
    # redis-py (the producer) percent-decodes the user and password; arq passes them on as written.
    settings.username = unquote(parts.username) if parts.username else parts.username
    settings.password = unquote(parts.password) if parts.password else parts.password
    # arq reads no query options; redis-py's from_url does, so one URL must mean the same to both.
    query = parse_qs(parts.query)
    for option in TLS_FILE_OPTIONS:
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


def connection_error(url: str, exc: BaseException) -> RedisUnavailableError:
    """The one-line error for a failed first contact: a refused password is not an unreachable server."""
    reason = error_line(exc, 160)
    where = redact(url)
    # Redis 6 says "no password is set", Redis 7 "without any password configured".
    if isinstance(exc, AuthenticationWrongNumberOfArgsError) or (
        "no password is set" in reason or "without any password configured" in reason
    ):
        return RedisAuthError(
            f"Redis at {where} refused the password: it has none set for this user ({reason}); "
            "remove the password from REDIS_URL or set one on the server"
        )
    if isinstance(exc, AuthenticationError) and "required" in reason.lower():
        return RedisAuthError(
            f"Redis at {where} requires a password ({reason}); put it in REDIS_URL: "
            "the URL's password goes between ':' and '@' before the host, after the user with ACLs"
        )
    if isinstance(exc, NoPermissionError):
        return RedisAuthError(
            f"Redis at {where} refused a command to this user ({reason}); its ACL needs the rights in "
            "docs/production.md"
        )
    if isinstance(exc, AuthenticationError):
        return RedisAuthError(
            f"Redis at {where} refused the password ({reason}); check the user and password in REDIS_URL"
        )
    return RedisUnavailableError(unreachable_message(url, reason))


def command_error(url: str, exc: BaseException) -> RedisUnavailableError:
    """The one-line error for a Redis failure in the middle of a command, after a good first contact."""
    reason = error_line(exc, 160)
    where = redact(url)
    if isinstance(exc, NoPermissionError | AuthenticationError):
        return connection_error(url, exc)
    if reason.startswith("OOM") or "maxmemory" in reason:
        return RedisUnavailableError(
            f"Redis at {where} is out of memory ({reason}); nothing more can be stored until "
            "maxmemory is raised or batches are deleted (`askq delete`)"
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return RedisUnavailableError(
            f"lost the connection to Redis at {where} ({reason}); run the command again"
        )
    return RedisUnavailableError(f"Redis at {where} refused a command ({reason})")
