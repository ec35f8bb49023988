"""What a browser may do to `askq serve`: other sites' writes and rebound host names are refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from tests.api_server import ApiServer, api_server

TOKEN = "browsers-test-token"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url, token=TOKEN) as running:
        yield running


def test_a_write_from_another_site_is_refused(server: ApiServer) -> None:
    """A POST whose Origin is another site is answered 403 before it reaches the batch."""
    answer = httpx2.post(f"{server.url}/api/batches/any/cancel", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "cross_origin"


def test_a_write_from_the_server_own_page_passes(server: ApiServer) -> None:
    """The console's own origin, or no Origin at all (curl, scripts), reaches the route (404: no batch)."""
    for headers in ({"Origin": server.url}, {}):
        answer = httpx2.post(f"{server.url}/api/batches/none-such/cancel", headers=headers)
        assert answer.status_code == 404, headers


def test_a_rebound_name_gets_nothing_from_a_tokenless_server(server: ApiServer) -> None:
    """Without a token, a request addressed to a non-loopback name (DNS rebinding) is refused, reads too."""
    answer = httpx2.get(f"{server.url}/api/batches", headers={"Host": "attacker.example"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "not_loopback"
    assert httpx2.get(f"{server.url}/api/batches", headers={"Host": "localhost:1"}).status_code == 200


def test_a_rebound_name_gets_no_console_page_from_a_tokenless_server(server: ApiServer) -> None:
    """The console's pages hold the API's questions and answers: a non-loopback name gets a 403 page."""
    for path in ("/", "/batches/any", "/jobs/any:item"):
        page = httpx2.get(f"{server.url}{path}", headers={"Host": "attacker.example"})
        assert page.status_code == 403, path
        assert "answers only loopback names" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx2.get(f"{server.url}/", headers={"Host": "localhost:1"}).status_code == 200


def test_the_console_cookie_authorises_api_calls(guarded: ApiServer) -> None:
    """The cookie /login sets is accepted like the bearer header; a wrong one is 401."""
    login = httpx2.post(f"{guarded.url}/login", data={"token": TOKEN, "next": "/"})
    assert login.status_code == 303
    cookie = login.cookies["askq_token"]
    assert httpx2.get(f"{guarded.url}/api/batches", cookies={"askq_token": cookie}).status_code == 200
    wrong = httpx2.get(f"{guarded.url}/api/batches", cookies={"askq_token": "nope"})
    assert wrong.status_code == 401


def test_login_never_redirects_elsewhere(guarded: ApiServer) -> None:
    """A `next` naming another site (or //host) is replaced by the console's root."""
    for target in ("https://evil.example/", "//evil.example/", "/\\\\evil.example"):
        login = httpx2.post(f"{guarded.url}/login", data={"token": TOKEN, "next": target})
        assert login.headers["location"] == "/", target


def test_pages_carry_a_strict_content_security_policy(server: ApiServer) -> None:
    """The console's pages allow only the server's own scripts: an injected inline script would not run."""
    page = httpx2.get(f"{server.url}/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_login_on_a_tokenless_server_goes_where_it_was_asked(server: ApiServer) -> None:
    """With no token to ask for, /login sends the browser on to `next` (a local path only)."""
    answer = httpx2.get(f"{server.url}/login", params={"next": "/batches/x"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/batches/x")
    elsewhere = httpx2.get(f"{server.url}/login", params={"next": "//evil.example/"})
    assert elsewhere.headers["location"] == "/"
