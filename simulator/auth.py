"""Bearer-token check behind the `require_api_key` setting."""

from __future__ import annotations

from aiohttp import web

from .errors import error_response
from .settings import SimulatorSettings


def check_api_key(request: web.Request, settings: SimulatorSettings) -> web.Response | None:
    """401 with OpenAI's body when a key is required and the bearer token differs; None when allowed."""
    if settings.require_api_key is None:
        return None
    if request.headers.get("Authorization") == f"Bearer {settings.require_api_key}":
        return None
    return error_response(401, "Incorrect API key provided (simulated).", code="invalid_api_key")
