"""Admin routes under `/_sim/`: stats, recorded requests, live settings and reset."""

from __future__ import annotations

import json

from aiohttp import web

from .errors import error_response
from .outage import LISTENER_KEY
from .profiles import with_profile
from .settings import SettingsError
from .state import STATE_KEY


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats.snapshot())


async def get_requests(request: web.Request) -> web.Response:
    """What ``record_requests`` kept: each answered request's user message, model, system messages,
    temperature and answer."""
    return web.json_response({"requests": request.app[STATE_KEY].recorded})


async def get_embeddings(request: web.Request) -> web.Response:
    """What ``record_requests`` kept of embeddings requests: each one's model, inputs and dimensions."""
    return web.json_response({"requests": request.app[STATE_KEY].recorded_embeddings})


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].settings.model_dump())


async def post_settings(request: web.Request) -> web.Response:
    """Partial update; the whole update is refused when any key is unknown or any value is bad.
    ``{"profile": NAME}`` applies a provider profile (``simulator.profiles``), the other keys over it."""
    try:
        changes = json.loads(await request.read())
    except ValueError:
        return error_response(400, "settings body must be a JSON object")
    if not isinstance(changes, dict):
        return error_response(400, "settings body must be a JSON object")
    try:
        settings = request.app[STATE_KEY].update_settings(with_profile(changes))
    except SettingsError as exc:
        return error_response(400, f"invalid setting {exc}", param=exc.key or None, code="invalid_setting")
    return web.json_response(settings.model_dump())


async def post_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def post_down(request: web.Request) -> web.Response:
    """Be down for ``{"seconds": N}``: connections refused, open ones dropped, then up on the same port.
    The server is down already when this answer arrives; its own connection closes after it."""
    try:
        body = json.loads(await request.read())
        seconds = float(body["seconds"])
    except (ValueError, KeyError, TypeError):
        return error_response(400, 'down body must be {"seconds": N}')
    if not 0 <= seconds <= 3600:
        return error_response(400, "seconds must be between 0 and 3600")
    await request.app[LISTENER_KEY].down(seconds, keep=request)
    return web.json_response({"down_s": seconds}, headers={"Connection": "close"})
