"""Every error the server sends is one JSON object in OpenAI's shape, ``{"error": {"message", "type",
"param", "code"}}``, so the stock ``openai`` client reads it too: a message that names what was wrong,
never a stack trace, never a secret."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import (
    AskqError,
    ConfigError,
    InputError,
    KnowledgeError,
    NotFoundError,
    RedisUnavailableError,
)
from common.reconnect import describe
from common.secrets import redact_secrets

log = structlog.get_logger(__name__)

_STATUS_OF: tuple[tuple[type[AskqError], int, str], ...] = (
    (NotFoundError, 404, "not_found_error"),
    (InputError, 422, "invalid_request_error"),
    (KnowledgeError, 409, "invalid_request_error"),
    (RedisUnavailableError, 503, "service_unavailable"),
    (ConfigError, 500, "server_error"),
)


class ApiError(Exception):
    """An error a route answers with: its status, message and OpenAI-style type, param and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"message": redact_secrets(message), "type": kind, "param": param, "code": code}
    if extra:
        error.update(extra)
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, kind=exc.kind, param=exc.param, code=exc.code, headers=exc.headers
        )

    @app.exception_handler(AskqError)
    async def _askq_error(request: Request, exc: AskqError) -> JSONResponse:
        for kind_of, status, kind in _STATUS_OF:
            if isinstance(exc, kind_of):
                return error_response(status, str(exc), kind=kind)
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        ]
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        return error_response(422, "; ".join(problems), param=".".join(str(p) for p in first[1:]) or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_away(request: Request, exc: Exception) -> JSONResponse:
        # Redis restarting or unreachable: the client may try again; one log line, not a trace.
        log.warning("redis unavailable", method=request.method, path=request.url.path, error=describe(exc))
        return error_response(
            503, f"Redis is unavailable ({describe(exc)}); try again", kind="service_unavailable"
        )


class CrashGuard:
    """A bug in a route: logged with its trace, answered with a JSON 500 that never holds it (it may
    hold paths, keys, data), and the connection kept. Starlette's own handler of ``Exception`` sends
    the 500 and then raises again, and uvicorn closes the connection: a client reusing it (the
    openai client, retrying) got a connection error instead of the 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("request failed", method=scope.get("method"), path=scope.get("path"))
            if started:
                raise  # mid-response: nothing else to say but to close the connection
            response = error_response(500, "internal server error: see the server's log", kind="server_error")
            await response(scope, receive, send)
