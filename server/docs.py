"""The OpenAPI schema and its page (``/openapi.json``, ``/docs``), and the Swagger UI files the page
loads (``/static/swagger-ui/``), shipped in the package: the page fetches nothing from the internet.

The schema and the page are behind the token like every route but ``/healthz``: FastAPI's own serve
them to anyone, and the schema maps every route. The Swagger UI files are public, like ``/healthz``:
a browser sends no ``Authorization`` header for a ``<script>`` or a stylesheet, and they are the
same open-source files for every askq, telling nothing of this one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_URL = "/static/swagger-ui"
SWAGGER_UI_FILES = Path(__file__).parent / "swagger_ui"
"""swagger-ui-dist's files (its README says which version), installed as package data."""


def docs_router() -> APIRouter:
    router = APIRouter()

    @router.get("/openapi.json", include_in_schema=False)
    async def schema(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get("/docs", include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="askq API",
            swagger_js_url=f"{SWAGGER_UI_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI_URL}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI_URL}/favicon-32x32.png",
            # No validator badge: Swagger UI would send the schema to validator.swagger.io for it.
            swagger_ui_parameters={"validatorUrl": None},
        )

    return router


def swagger_ui_files() -> StaticFiles:
    """The Swagger UI files, to mount at ``SWAGGER_UI_URL`` without the token."""
    return StaticFiles(directory=SWAGGER_UI_FILES)
