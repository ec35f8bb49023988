"""``askq serve`` as a real process on a free port, for the API tests: its base URL and token."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from askq.serve import READY
from askq.stack import stop
from tests.helpers import ASKQ, REPO


@dataclass(frozen=True)
class ApiServer:
    url: str
    """``http://127.0.0.1:PORT``."""
    token: str | None
    pid: int
    """The server's process: a test may kill it (the context still cleans up after it)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@contextlib.contextmanager
def api_server(
    redis_url: str,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    port: int = 0,
    said_after: list[str] | None = None,
) -> Iterator[ApiServer]:
    """``askq serve --port PORT`` (0: a free one), started and ready (it said so on stderr), stopped after;
    ``said_after``: given the lines it wrote on stderr after it was ready, once it has stopped."""
    environment = {**os.environ, "REDIS_URL": redis_url, **(env or {})}
    environment.pop("ASKQ_API_TOKEN", None)
    if token is not None:
        environment["ASKQ_API_TOKEN"] = token
    process = subprocess.Popen(
        [*ASKQ, "serve", "--port", str(port), *args],
        cwd=REPO,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:  # its first lines: the server says when it listens
            if line.startswith(READY):
                url = line.removeprefix(READY).split()[0]
                break
            said.append(line)
        else:
            raise RuntimeError(f"askq serve exited {process.wait()}: {''.join(said)}")
        yield ApiServer(url, token, process.pid)
    finally:
        stop(process)
        if process.stderr is not None:
            if said_after is not None:
                said_after.extend(process.stderr)
            process.stderr.close()


def token_file(folder: Path, token: str) -> Path:
    path = folder / "token"
    path.write_text(token + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    """A port nothing listens on now: for a server that must come back on the same one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
