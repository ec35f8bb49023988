"""Who may call the server: a dependency of every router but ``/healthz``.

- **The token.** With one configured, a request carries it as ``Authorization: Bearer TOKEN`` (the
  API's clients) or in the console's cookie, set by ``/login`` (a browser can send neither a header
  with a page's address nor one with an ``EventSource``). Compared in constant time.
- **Browsers from other sites.** A page elsewhere can make the browser send a form ``POST`` to a
  loopback server, token or not (with the cookie, or with nothing to check). A request that changes
  something and names an ``Origin`` (browsers do; curl and the openai client do not) must come from
  this server's own origin.
- **Another name for loopback.** A site can point its own name at 127.0.0.1 (DNS rebinding) and read
  a tokenless server as its own origin; without a token, only loopback names are answered.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request

from server.errors import ApiError
from server.settings import is_loopback
from server.state import server_state

COOKIE = "askq_token"
"""The console's cookie: the token itself (HttpOnly, SameSite=Strict), set by ``/login``."""
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def require_token(request: Request) -> None:
    """Refuse a request that is not the token holder's, or that a browser sent for another site."""
    check_origin(request)
    token = server_state(request).settings.token
    if token is None:
        check_loopback_host(request)
        return
    given = bearer(request)
    if given is None:
        given = request.cookies.get(COOKIE)
    if not given:
        raise ApiError(401, "missing the API token: send Authorization: Bearer TOKEN", code="missing_token",
                       headers=_CHALLENGE)  # fmt: skip
    if not token_matches(given, token):
        raise ApiError(401, "the API token is not this server's", code="invalid_token", headers=_CHALLENGE)


def bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def has_access(request: Request) -> bool:
    """Whether a page may be shown: no token configured, or the request carries it."""
    token = server_state(request).settings.token
    if token is None:
        return True
    given = bearer(request) or request.cookies.get(COOKIE)
    return bool(given) and token_matches(given or "", token)


def check_origin(request: Request) -> None:
    """A request that changes something, sent by a page of another origin, is refused (CSRF)."""
    origin = request.headers.get("origin")
    allowed = server_state(request).settings.cors_origins
    if request.method in _SAFE_METHODS or origin is None or origin in allowed:
        return
    parts = urlsplit(origin)
    if parts.scheme != request.url.scheme or parts.netloc != request.headers.get("host"):
        raise ApiError(403, f"a page of another site ({origin[:100]}) may not change this server's batches",
                       kind="permission_error", code="cross_origin")  # fmt: skip


def check_loopback_host(request: Request) -> None:
    """Without a token, answer only requests addressed to a loopback name (not a rebound domain)."""
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name and not is_loopback(name) and name != server_state(request).settings.host:
        raise ApiError(403, f"this server has no token and answers only loopback names, not {name[:100]!r}",
                       kind="permission_error", code="not_loopback")  # fmt: skip
