"""What ``askq serve`` runs with: where it listens, its token, its limits. Read once at start."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError

TOKEN_ENV = "ASKQ_API_TOKEN"
CORS_ENV = "ASKQ_API_CORS_ORIGINS"
UPLOAD_LIMIT_ENV = "ASKQ_API_UPLOAD_LIMIT_BYTES"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
UPLOAD_LIMIT_BYTES = 200 * 1024 * 1024
"""OpenAI's limit for a batch input file: larger uploads get 413."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    """Every route but ``/healthz`` wants ``Authorization: Bearer TOKEN`` when set."""
    upload_limit_bytes: int = UPLOAD_LIMIT_BYTES
    cors_origins: tuple[str, ...] = ()
    """Origins a browser may call the API from; none by default (no CORS headers at all)."""
    redis_url: str | None = None
    """None: ``REDIS_URL`` or its default."""
    spool_dir: Path | None = None
    """Where uploads are written while they are checked and submitted; None: the system's temp folder."""

    def check(self) -> ServerSettings:
        """Refuse a server reachable from other machines without a token."""
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"askq serve --host {self.host}: other machines could reach it, and it has no token: set "
                f"{TOKEN_ENV} or --token-file, or listen on 127.0.0.1"
            )
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token(token_file: Path | None) -> str | None:
    """The token from ``--token-file`` (its first line), else ``ASKQ_API_TOKEN``; None without either."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{token_file}: cannot read the token file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{token_file}: the token file is not UTF-8 text") from None
        if not token:
            raise ConfigError(f"{token_file}: the token file is empty")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None  # as the header's token is read: stripped


def cors_origins() -> tuple[str, ...]:
    raw = os.environ.get(CORS_ENV, "")
    return tuple(origin.strip() for origin in raw.split(",") if origin.strip())


def upload_limit() -> int:
    """``ASKQ_API_UPLOAD_LIMIT_BYTES`` (a positive whole number of bytes), else OpenAI's 200 MB."""
    raw = os.environ.get(UPLOAD_LIMIT_ENV, "").strip()
    if not raw:
        return UPLOAD_LIMIT_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise ConfigError(f"{UPLOAD_LIMIT_ENV}={raw!r}: expected a positive whole number of bytes")
    return int(raw)
