"""`askq serve`: a real server process over HTTP; health, the token, errors as JSON, its refusals."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from redis import Redis as SyncRedis
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from askq.stack import embedded_redis
from server.docs import SWAGGER_UI_FILES, SWAGGER_UI_URL
from tests.api_server import ApiServer, api_server, token_file
from tests.helpers import askq

TOKEN = "s3cret-token-for-tests"
ASSET_TYPES = {
    "favicon-32x32.png": {"image/png"},
    "swagger-ui-bundle.js": {"text/javascript", "application/javascript"},
    "swagger-ui.css": {"text/css"},
}
"""The files /docs loads, sorted by name, and the content types each may be served with."""


@pytest.fixture(scope="module")
def guarded(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url, token=TOKEN) as server:
        yield server


def test_health_needs_no_token(guarded: ApiServer) -> None:
    """/healthz answers without a token, for load balancers: Redis is up."""
    response = httpx2.get(f"{guarded.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True})


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing_token"),
    ],
)
def test_every_other_route_wants_the_token(
    guarded: ApiServer, redis: Redis, headers: dict[str, str], code: str
) -> None:
    """No token, a wrong one, or another scheme: 401 in OpenAI's error shape, with a Bearer challenge."""
    response = httpx2.get(f"{guarded.url}/api/jobs/b:1", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == code
    assert TOKEN not in response.text


def test_with_the_token_an_unknown_job_is_a_404_naming_it(guarded: ApiServer, redis: Redis) -> None:
    """The right token gets through; an unknown batch is a JSON 404 saying which."""
    response = httpx2.get(f"{guarded.url}/api/jobs/nobatch:1", headers=guarded.headers)
    assert response.status_code == 404
    error = response.json()["error"]
    assert "unknown batch 'nobatch'" in error["message"]
    assert error["type"] == "not_found_error"


def test_an_unknown_route_is_a_json_404(guarded: ApiServer) -> None:
    """Not HTML, not FastAPI's bare detail: the same error object as every other refusal."""
    response = httpx2.get(f"{guarded.url}/api/nothing", headers=guarded.headers)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no route GET /api/nothing"


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(guarded: ApiServer) -> None:
    """A declared Content-Length over 200 MB is a 413 at once, the body never sent (a raw socket)."""
    host, port = guarded.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST /api/batches HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {201 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_a_server_reachable_by_other_machines_without_a_token_is_refused(redis_url: str) -> None:
    """--host 0.0.0.0 with no token: one line naming what to do, exit 1, nothing served."""
    shown = askq(
        "serve", "--host", "0.0.0.0", "--port", "0", env={"REDIS_URL": redis_url, "ASKQ_API_TOKEN": ""}
    )
    assert shown.returncode == 1
    assert shown.stderr.startswith("askq: askq serve --host 0.0.0.0: other machines could reach it")
    assert "Traceback" not in shown.stderr


def test_a_token_file_is_read_and_an_empty_one_refused(redis_url: str, tmp_path: Path) -> None:
    """--token-file's first line is the token; an empty file is a one-line refusal."""
    with api_server(redis_url, args=("--token-file", str(token_file(tmp_path, "from-file")))) as server:
        assert httpx2.get(f"{server.url}/api/jobs/b:1").status_code == 401
        ok = httpx2.get(f"{server.url}/api/jobs/b:1", headers={"Authorization": "Bearer from-file"})
        assert ok.status_code == 404  # through the token check: the job is unknown
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    shown = askq("serve", "--port", "0", "--token-file", str(empty), env={"REDIS_URL": redis_url})
    assert (shown.returncode, shown.stderr) == (1, f"askq: {empty}: the token file is empty\n")


def test_redis_unreachable_is_one_line(tmp_path: Path) -> None:
    """No Redis at REDIS_URL: the server does not start, and says so in one line."""
    shown = askq("serve", "--port", "0", env={"REDIS_URL": "redis://127.0.0.1:1"})
    assert shown.returncode == 1
    assert shown.stderr.startswith("askq: cannot reach Redis at redis://127.0.0.1:1")
    assert "Traceback" not in shown.stderr


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc", "/metrics"])
def test_the_schema_its_pages_and_metrics_want_the_token_too(guarded: ApiServer, path: str) -> None:
    """Every route but /healthz: the schema maps every route, so it is no more public than they are."""
    refused = httpx2.get(f"{guarded.url}{path}")
    assert refused.status_code in (401, 404)  # /redoc is not served at all
    if path != "/redoc":
        assert refused.status_code == 401
        assert httpx2.get(f"{guarded.url}{path}", headers=guarded.headers).status_code == 200


def test_docs_loads_swagger_ui_from_the_server_itself(guarded: ApiServer) -> None:
    """/docs names no URL off the server; each file it loads is served, typed, without a token."""
    page = httpx2.get(f"{guarded.url}/docs", headers=guarded.headers)
    assert page.status_code == 200
    assert re.findall(r"https?://", page.text) == []
    assert "url: '/openapi.json'" in page.text
    loaded = sorted(re.findall(r'(?:href|src)="([^"]+)"', page.text))
    assert loaded == [f"{SWAGGER_UI_URL}/{name}" for name in ASSET_TYPES]
    for url, types in zip(loaded, ASSET_TYPES.values(), strict=True):
        response = httpx2.get(f"{guarded.url}{url}")  # a browser sends no token for a script or a style
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] in types, url
        assert response.content == (SWAGGER_UI_FILES / url.rsplit("/", 1)[1]).read_bytes()


def test_only_the_swagger_ui_files_are_public(guarded: ApiServer) -> None:
    """Outside the Swagger UI folder nothing is served without the token: no way up to the package."""
    for path in ("/static/swagger-ui/..%2fdocs.py", "/static/swagger-ui/%2e%2e/app.py", "/static/docs.py"):
        assert httpx2.get(f"{guarded.url}{path}").status_code == 404, path
    assert httpx2.get(f"{guarded.url}/openapi.json").status_code == 401


def test_redis_gone_mid_life_is_a_503_naming_it(tmp_path: Path) -> None:
    """Redis stopped under a running server: a JSON 503 saying so, not a 500 with a trace."""
    with embedded_redis(tmp_path / "redis") as url, api_server(url) as server:
        assert httpx2.get(f"{server.url}/healthz").status_code == 200
        with contextlib.suppress(redis_errors.ConnectionError):  # it hangs up as it goes
            SyncRedis.from_url(url).shutdown(nosave=True)
        response = httpx2.get(f"{server.url}/api/batches")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["type"] == "service_unavailable"
        assert error["message"].startswith("Redis is unavailable")
