"""The bearer token: a dependency of every router but ``/healthz``; compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from server.errors import ApiError
from server.state import server_state

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_token(request: Request) -> None:
    """Nothing to check without a token (a loopback server); else ``Authorization: Bearer TOKEN``."""
    token = server_state(request).settings.token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing the API token: send Authorization: Bearer TOKEN", code="missing_token",
                       headers=_CHALLENGE)  # fmt: skip
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "the API token is not this server's", code="invalid_token", headers=_CHALLENGE)
