"""``askq serve``: the HTTP server (``server``) on uvicorn, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvicorn

from common.config import AskqConfig, load_config
from common.logs import configure_logging
from producer.connection import connect
from server.app import create_app, stop_live_streams
from server.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerSettings,
    cors_origins,
    read_token,
    upload_limit,
)

READY = "askq serve: listening on"
"""The start of the line on stderr once the server accepts connections (the tests wait for it)."""


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token_file: Path | None = None) -> int:
    settings = ServerSettings(
        host=host,
        port=port,
        token=read_token(token_file),
        cors_origins=cors_origins(),
        upload_limit_bytes=upload_limit(),
    ).check()
    config = load_config()
    configure_logging(quiet=True)
    asyncio.run(_check_redis(settings))  # one clear line now, not a traceback from the server's start
    server = uvicorn_server(settings, config)
    original_startup = server.startup

    async def startup(sockets=None):  # type: ignore[no-untyped-def]
        await original_startup(sockets)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname() if server.servers else (host, port)
            shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
            print(f"{READY} http://{shown}:{bound[1]} (API docs at /docs)", file=sys.stderr, flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    return 0 if server.started else 1


def uvicorn_server(settings: ServerSettings, config: AskqConfig) -> uvicorn.Server:
    """The app for ``settings`` on uvicorn, quiet but for warnings (askq logs what matters)."""
    app = create_app(settings, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Requests still running on shutdown get this long, then are cancelled.
            timeout_graceful_shutdown=2,
        )
    )
    original_shutdown = server.shutdown

    async def shutdown(sockets=None):  # type: ignore[no-untyped-def]
        stop_live_streams(app)  # open streams end now, not at the graceful timeout
        await original_shutdown(sockets)

    server.shutdown = shutdown  # type: ignore[method-assign]
    return server


async def _check_redis(settings: ServerSettings) -> None:
    async with connect(settings.redis_url):
        pass
