"""``askq serve`` as a real process on a free port, for the API tests: its base URL and token."""

from __future__ import annotations

import contextlib
import os
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
    pid: int = 0
    """The server process's id (for a test that stops it)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@contextlib.contextmanager
def api_server(
    redis_url: str, *, token: str | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[ApiServer]:
    """``askq serve --port 0``, started and ready (it said so on stderr), stopped after."""
    environment = {**os.environ, "REDIS_URL": redis_url, **(env or {})}
    environment.pop("ASKQ_API_TOKEN", None)
    if token is not None:
        environment["ASKQ_API_TOKEN"] = token
    process = subprocess.Popen(
        [*ASKQ, "serve", "--port", "0", *args],
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
            process.stderr.close()


def token_file(folder: Path, token: str) -> Path:
    path = folder / "token"
    path.write_text(token + "\n", encoding="utf-8")
    return path
