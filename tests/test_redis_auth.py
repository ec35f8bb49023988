"""REDIS_URL with a password, and rediss:// with a private CA: the CLI flow works; the secret never shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from askq.stack import embedded_redis, free_port, stop
from tests.conftest import Simulator
from tests.helpers import askq

PASSWORD = "s3cret-Redis-pw"
PRIVATE = ("--requirepass", PASSWORD, "--save", "", "--appendonly", "no")


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[str]:
    with embedded_redis(tmp_path / "redis") as url:
        with redis.Redis.from_url(url) as client:
            client.config_set("requirepass", PASSWORD)
        yield url.replace("redis://", f"redis://:{PASSWORD}@")


def _flow(url: str, questions: Path) -> str:
    """submit, a verbose burst worker, status and results against ``url``; returns everything printed."""
    env = {"REDIS_URL": url}
    printed = []
    for args in (
        ("submit", str(questions), "--batch", "sec"),
        ("worker", "--burst", "-v"),
        ("status", "sec", "--json"),
        ("results", "sec"),
    ):
        done = askq(*args, env=env)
        assert done.returncode == 0, done.stderr
        printed += [done.stdout, done.stderr]
    assert json.loads(printed[4])["counts"]["succeeded"] == 2  # status's stdout
    return "".join(printed)


def test_a_password_in_redis_url_works_and_is_never_printed(
    password_redis: str, sim: Simulator, write: Any
) -> None:
    """Every command works with redis://:PASSWORD@; no output, debug logs included, holds the password."""
    questions = write("q.txt", "one\ntwo\n")
    assert PASSWORD not in _flow(password_redis, questions)
    wrong = askq("status", "sec", env={"REDIS_URL": password_redis.replace(PASSWORD, "wrong-pw")})
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1
    assert "wrong-pw" not in wrong.stderr


def _tls_redis_server() -> str | None:
    """A redis-server on PATH built with TLS (Debian's is), or None."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("openssl") is None:
        return None
    # Listening nowhere, a server exits at once; one built without TLS first refuses the directive.
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=10
    )
    return None if "Bad directive" in probe.stdout + probe.stderr else binary


def _certificates(folder: Path) -> None:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    folder.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ("-newkey", "rsa:2048", "-nodes")
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=askq test CA"
    )
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext",
    )  # fmt: skip


def test_rediss_with_a_private_ca_works(tmp_path: Path, sim: Simulator, write: Any) -> None:
    """rediss:// with ?ssl_ca_certs= reaches a TLS-only redis-server from producer and worker alike."""
    binary = _tls_redis_server()
    if binary is None:
        pytest.skip("no redis-server with TLS support and openssl on PATH")
    certs = tmp_path / "certs"
    _certificates(certs)
    port = free_port()
    tls = ("--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem")
    server = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), *tls, "--tls-auth-clients", "no", *PRIVATE],
        cwd=certs,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.pem'}"
        _wait_until_serving(url)
        questions = write("q.txt", "one\ntwo\n")
        assert PASSWORD not in _flow(url, questions)
    finally:
        stop(server)


def _wait_until_serving(url: str) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except (redis.RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # a starting server polled up to the deadline
        finally:
            client.close()


def test_a_refused_password_is_not_called_unreachable(password_redis: str) -> None:
    """A wrong password and a missing one each get their own line, naming REDIS_URL, not 'cannot reach'."""
    wrong = askq("status", "b", env={"REDIS_URL": password_redis.replace(PASSWORD, "wrong-pw")})
    assert wrong.returncode == 1
    assert "refused the password" in wrong.stderr
    assert "cannot reach" not in wrong.stderr
    missing = askq("status", "b", env={"REDIS_URL": password_redis.replace(f":{PASSWORD}@", "")})
    assert missing.returncode == 1
    assert "requires a password" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_a_worker_with_a_refused_password_says_so_in_one_line(password_redis: str, sim: Simulator) -> None:
    """askq worker checks Redis once before arq's retries: one line, no arq retry lines, exit 1."""
    done = askq("worker", "--burst", env={"REDIS_URL": password_redis.replace(PASSWORD, "wrong-pw")})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert "refused the password" in done.stderr
    assert "wrong-pw" not in done.stderr


@pytest.mark.parametrize("option", ["ssl_ca_certs=/tmp/ca.pem", "ssl_cert_reqs=none"])
def test_a_tls_option_on_a_plain_url_is_a_one_line_error(option: str, sim: Simulator) -> None:
    """?ssl_ca_certs= on redis:// (redis-py's TypeError before) names the option and asks for rediss://."""
    for command in (("status", "b"), ("worker", "--burst")):
        done = askq(*command, env={"REDIS_URL": f"redis://127.0.0.1:1/0?{option}"})
        assert done.returncode == 1, command
        assert "Traceback" not in done.stderr
        assert f"{option.split('=')[0]} is a TLS option and needs a rediss:// URL" in done.stderr


def test_an_unknown_scheme_is_named(sim: Simulator) -> None:
    """REDIS_URL=http://... is refused naming the scheme, before any connection is tried."""
    done = askq("status", "b", env={"REDIS_URL": "http://127.0.0.1:6379"})
    assert done.returncode == 1
    assert "expected a redis://, rediss:// (TLS) or unix:// URL, got scheme 'http'" in done.stderr


@pytest.fixture
def limited_redis(password_redis: str) -> str:
    """A URL for an ACL user who may use askq's keys but publish on no channel, run no INFO, and
    read no list range."""
    with redis.Redis.from_url(password_redis) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "limited", "reset", "on", ">limited-pw", "~askq:*", "~arq:*",
            "resetchannels", "+@all", "-@pubsub", "-info", "-lrange",
        )  # fmt: skip
    return password_redis.replace(f":{PASSWORD}@", ":limited-pw@").replace("redis://", "redis://limited")


def test_a_command_refused_by_an_acl_is_one_line_naming_the_docs(
    limited_redis: str, sim: Simulator, write: Any
) -> None:
    """status whose LRANGE is refused, and a worker whose INFO is refused: one line each, no
    traceback, pointing at the rights the ACL needs (not 'cannot reach Redis')."""
    env = {"REDIS_URL": limited_redis}
    submitted = askq("submit", str(write("q.txt", "one\n")), "--batch", "acl", env=env)
    assert submitted.returncode == 0, submitted.stderr  # a refused wake-up is advice lost, not an error
    status = askq("status", "acl", env=env)
    worker = askq("worker", "--burst", env=env)
    for done in (status, worker):
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert "refused a command to this user" in done.stderr
        assert "docs/production.md" in done.stderr
        assert "limited-pw" not in done.stderr
    assert status.stderr.count("\n") == 1


def test_a_worker_without_redis_is_one_line(sim: Simulator) -> None:
    """askq worker with Redis down prints one line naming the URL (no arq retry lines first), exit 1."""
    done = askq("worker", "--burst", env={"REDIS_URL": "redis://:pw-hidden@127.0.0.1:1/0"})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("askq: cannot reach Redis at redis://:***@127.0.0.1:1/0")


def test_a_password_for_a_server_without_one_says_so(redis_url: str) -> None:
    """A password sent to a Redis that has none is named as such, not as a wrong password."""
    done = askq("status", "b", env={"REDIS_URL": redis_url.replace("redis://", "redis://:surplus-pw@")})
    assert done.returncode == 1
    assert "it has none set for this user" in done.stderr
    assert "surplus-pw" not in done.stderr


def test_the_password_required_hint_survives_masking(password_redis: str) -> None:
    """The 'requires a password' line says where the password goes without a masked example."""
    done = askq("status", "b", env={"REDIS_URL": password_redis.replace(f":{PASSWORD}@", "")})
    assert "the URL's password goes between ':' and '@'" in done.stderr
    assert "***" not in done.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://[::1", "not a URL"),
        ("redis://127.0.0.1:1/abc", "the path must be a database number"),
        ("redis://127.0.0.1:1/2/", "the path must be a database number"),
        ("redis://127.0.0.1:1/0?db=x", "db must be a database number"),
        ("redis://127.0.0.1:1/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
    ],
)
def test_a_malformed_redis_url_is_named_not_called_unreachable(url: str, says: str, sim: Simulator) -> None:
    """A URL askq cannot read is one line naming REDIS_URL and the fault, for producer and worker alike
    (the worker read another database than the producer, or crashed)."""
    for command in (("status", "b"), ("worker", "--burst")):
        done = askq(*command, env={"REDIS_URL": url})
        assert done.returncode == 1, command
        assert done.stderr.count("\n") == 1, done.stderr
        assert says in done.stderr
        assert "cannot reach" not in done.stderr


def test_a_bare_slash_means_database_zero_to_both_sides(redis_url: str, sim: Simulator, write: Any) -> None:
    """redis://host:port/ is database 0 for submit and for the worker (arq failed on it)."""
    env = {"REDIS_URL": redis_url + "/"}
    assert askq("submit", str(write("q.txt", "one\n")), "--batch", "slash", env=env).returncode == 0
    worker = askq("worker", "--burst", env=env)
    assert worker.returncode == 0, worker.stderr
    assert '"succeeded": 1' in askq("status", "slash", "--json", env=env).stdout
