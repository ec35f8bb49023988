"""The aiohttp application: routes bound to one `SimState`."""

from __future__ import annotations

import time
import weakref

from aiohttp import web

from . import admin, batch_api
from .auth import check_api_key
from .chat import handle_chat
from .embeddings import handle_embeddings
from .keepalive import SERVED, close_after_response, drop_reused
from .models import MODELS
from .settings import SimulatorSettings
from .state import STATE_KEY, SimState

_MAX_BODY_BYTES = 32 * 1024 * 1024


def create_app(settings: SimulatorSettings | None = None) -> web.Application:
    app = web.Application(client_max_size=_MAX_BODY_BYTES, middlewares=[drop_reused])
    app[SERVED] = weakref.WeakSet()
    app[STATE_KEY] = SimState(settings or SimulatorSettings())
    app.router.add_post("/v1/chat/completions", handle_chat)
    app.router.add_post("/v1/embeddings", handle_embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/files", batch_api.upload_file)
    app.router.add_get("/v1/files/{file_id}", batch_api.get_file)
    app.router.add_get("/v1/files/{file_id}/content", batch_api.file_content)
    app.router.add_post("/v1/batches", batch_api.create_batch)
    app.router.add_get("/v1/batches/{batch_id}", batch_api.get_batch)
    app.router.add_get("/_sim/stats", admin.get_stats)
    app.router.add_get("/_sim/requests", admin.get_requests)
    app.router.add_get("/_sim/embeddings", admin.get_embeddings)
    app.router.add_get("/_sim/settings", admin.get_settings)
    app.router.add_post("/_sim/settings", admin.post_settings)
    app.router.add_post("/_sim/reset", admin.post_reset)
    app.router.add_post("/_sim/down", admin.post_down)
    app.on_response_prepare.append(close_after_response)
    return app


async def list_models(request: web.Request) -> web.Response:
    refused = check_api_key(request, request.app[STATE_KEY].settings)
    if refused is not None:
        return refused
    created = int(time.time())
    data = [{"id": name, "object": "model", "created": created, "owned_by": "simulator"} for name in MODELS]
    return web.json_response({"object": "list", "data": data})
