"""OpenAI-shaped error bodies and the JSON responses that carry them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

# Per status: (error type, error code) as the real API sends them.
_STATUS_SHAPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    error_type: str | None = None,
) -> web.Response:
    """JSON error with the type/code the real API uses for `status`; an explicit `code` or type wins."""
    default_type, default_code = _STATUS_SHAPES.get(status, ("invalid_request_error", None))
    body = error_body(message, error_type or default_type, param, code if code is not None else default_code)
    return web.json_response(body, status=status, headers=headers)


def retry_after_headers(seconds: float) -> dict[str, str]:
    """Both spellings clients read: `Retry-After` (fractional seconds) and `retry-after-ms`."""
    seconds = max(0.0, seconds)
    return {"Retry-After": f"{round(seconds, 3):g}", "retry-after-ms": str(round(seconds * 1000))}
