"""The console's templates: Jinja2 with autoescape on for every page, made with the app (never at
import), and the few filters the pages share."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from server.auth import has_access
from server.state import server_state

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

PAGE_HEADERS = {
    # The pages load only their own scripts and styles and talk only to this server.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Pages:
    """Renders a template into a response with the console's headers."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["thousands"] = thousands
        self.env.filters["age"] = age
        self.env.filters["path_part"] = path_part

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        signed_in = server_state(request).settings.token is not None and has_access(request)
        html = self.env.get_template(name).render(request=request, signed_in=signed_in, **context)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def path_part(value: str) -> str:
    """One segment of a URL's path: every character but the unreserved ones escaped, ``/`` too."""
    return quote(value, safe="")


def thousands(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def age(created_at: float | None, now: float | None = None) -> str:
    """How long ago, in the largest unit that keeps it short: ``42 s``, ``7 min``, ``3 h``, ``2 d``."""
    if created_at is None:
        return "—"
    seconds = max(0.0, (now or time.time()) - created_at)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"
