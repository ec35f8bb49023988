"""The FastAPI application: its lifespan (one Redis pool, the config), error handlers, auth, routers,
and the web console (``server/console``).

Routers per resource live in ``server/routes/``; each is included with the token dependency, except
``/healthz``, which a load balancer calls without one, and the Swagger UI files ``/docs`` loads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from common.config import AskqConfig, load_config
from producer.connection import connect
from server.auth import require_token
from server.body_limit import BodyLimit
from server.console.pages import console_router
from server.console.render import STATIC, Pages
from server.docs import SWAGGER_UI_URL, docs_router, swagger_ui_files
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
    # The console's pages send a browser without the token to /login rather than answer 401; its
    # scripts and styles hold nothing secret, and a login page needs them before the token.
    app.include_router(console_router(Pages()))
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    # Public, like /healthz: the files /docs loads, which a browser fetches without a token.
    app.mount(SWAGGER_UI_URL, swagger_ui_files(), name="swagger-ui")
    return app


def stop_live_streams(app: FastAPI) -> None:
    """The server starts to stop: its live event streams end now. uvicorn waits for open responses
    before it stops, and a stream is open until its client leaves."""
    state: ServerState | None = getattr(app.state, "askq", None)
    if state is not None:
        state.stopping.set()
