"""The FastAPI application: its lifespan (one Redis pool, the config), error handlers, auth, routers.

Routers per resource live in ``server/routes/``; each is included with the token dependency, except
``/healthz``, which a load balancer calls without one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from common.config import AskqConfig, load_config
from producer.connection import connect
from server.auth import require_token
from server.body_limit import BodyLimit
from server.docs import docs_router
from server.errors import CrashGuard, install_error_handlers
from server.routes import ROUTERS
from server.settings import ServerSettings
from server.state import ServerState


def create_app(settings: ServerSettings, config: AskqConfig | None = None) -> FastAPI:
    """The app for ``settings``; ``config``: jobs.yaml's (loaded at start when not given)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with connect(settings.redis_url) as redis:
            state = ServerState(settings, config or load_config(), redis)
            app.state.askq = state
            try:
                yield
            finally:
                for extra in state.extras.values():
                    close = getattr(extra, "aclose", None)
                    if close is not None:
                        await close()

    app = FastAPI(
        # The schema and its pages are routes like the others: behind the token (below).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        title="askq",
        summary="Batches of LLM questions on Redis and arq workers; the OpenAI Batch API on your workers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )

    app.add_middleware(BodyLimit, limit_bytes=settings.upload_limit_bytes)
    app.add_middleware(CrashGuard)  # outside BodyLimit, which answers its own refusals

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> Response:
        """Alive, and Redis answers: what a load balancer or compose's health check asks."""
        await request.app.state.askq.redis.ping()
        return JSONResponse({"ok": True})

    for router in (*ROUTERS, docs_router()):
        app.include_router(router, dependencies=[Depends(require_token)])
    return app


def stop_live_streams(app: FastAPI) -> None:
    """The server starts to stop: its live event streams end now. uvicorn waits for open responses
    before it stops, and a stream is open until its client leaves."""
    state: ServerState | None = getattr(app.state, "askq", None)
    if state is not None:
        state.stopping.set()
