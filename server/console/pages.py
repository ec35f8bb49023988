"""The console's pages: ``/`` (batches), ``/batches/{batch}``, ``/jobs/{job_id}``, and ``/login``.

Each page renders from the same producer code as the API routes, so it shows the truth before its
script runs; without access (a server with a token, no cookie yet) a page sends the browser to
``/login``, which keeps the token in an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from common.errors import NotFoundError
from common.status import JobState
from producer.batch_items import item_page
from producer.batches import recent_batches, status_document
from server.auth import COOKIE, check_loopback_host, check_origin, has_access, token_matches
from server.console.batch_view import (
    ITEMS_SHOWN,
    error_lines,
    gate_lines,
    index_asked,
    milliseconds,
    state_asked,
)
from server.console.job_view import job_view
from server.console.render import Pages
from server.errors import ApiError
from server.state import RedisDep, server_state

BATCHES_SHOWN = 50
COOKIE_MAX_AGE_S = 30 * 86400


def console_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def batches_page(request: Request, redis: RedisDep) -> Response:
        if refused := _refused(pages, request):
            return refused
        batches = [batch.listing_json() for batch in await recent_batches(redis, BATCHES_SHOWN)]
        job_types = sorted(server_state(request).config.job_types)
        return pages.render(request, "batches.html", batches=batches, job_types=job_types)

    @router.get("/batches/{batch}")
    async def batch_page(batch: str, request: Request, redis: RedisDep) -> Response:
        if refused := _refused(pages, request):
            return refused
        try:
            status = await status_document(redis, batch)
            state = state_asked(request.query_params.get("state"))
            after = index_asked(request.query_params.get("after"))
            items = await item_page(redis, batch, state=state, after=after, limit=ITEMS_SHOWN)
        except NotFoundError as exc:
            return pages.render(request, "missing.html", 404, what="batch", message=str(exc))
        return pages.render(
            request,
            "batch.html",
            batch=batch,
            status=status,
            items=items,
            state=state.value if state else "",
            states=[state.value for state in JobState],
            errors=error_lines(status),
            gate=gate_lines(status),
            milliseconds=milliseconds,
        )

    @router.get("/jobs/{job_id:path}")  # an item id may hold "/"
    async def job_page(job_id: str, request: Request, redis: RedisDep) -> Response:
        if refused := _refused(pages, request):
            return refused
        try:
            view = await job_view(redis, job_id)
        except NotFoundError as exc:
            return pages.render(request, "missing.html", 404, what="job", message=str(exc))
        return pages.render(request, "job.html", view=view, job=view.job)

    @router.get("/login")
    async def login_page(request: Request, next: str = "/") -> Response:
        if server_state(request).settings.token is None:  # nothing to sign in to
            return RedirectResponse(_local(next), status_code=303)
        return pages.render(request, "login.html", next=_local(next), failed=False)

    @router.post("/login")
    async def login(
        request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
    ) -> Response:
        check_origin(request)
        expected = server_state(request).settings.token
        if expected is None:
            return RedirectResponse(_local(next), status_code=303)
        if not token_matches(token.strip(), expected):
            return pages.render(request, "login.html", 401, next=_local(next), failed=True)
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            max_age=COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        check_origin(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    return router


def _refused(pages: Pages, request: Request) -> Response | None:
    """Why a page is not shown: a rebound name on a tokenless server (403, as the API answers it: the
    page holds the same questions and answers), or no token yet (to /login); None to show it."""
    if server_state(request).settings.token is None:
        try:
            check_loopback_host(request)
        except ApiError as exc:
            return pages.render(request, "refused.html", 403, message=exc.message)
        return None
    return None if has_access(request) else _to_login(request)


def _to_login(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


def _local(target: str) -> str:
    """Only a path on this server: ``next`` comes from the address bar, and must not lead elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
