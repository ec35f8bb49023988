"""A TCP proxy on loopback that resets connections at random: Redis connections dropping under workers.

    .venv/bin/python -m bench.reset_proxy --target-port 6379 [--listen-port 0] [--seed 1]
        [--reset-every-s 0.2,1]

It forwards every connection it accepts to ``127.0.0.1:TARGET`` and, after each random interval
drawn from the range (seeded, so a run can be repeated), resets one open connection chosen at
random: ``SO_LINGER 0`` then close sends an RST both ways, as a load balancer or a NAT dropping a
flow does. It prints ``reset proxy listening on PORT`` once ready, then reads commands on stdin:
``pause`` stops the resets (connections are still forwarded), ``resume`` starts them again; each is
acknowledged by a line. At the end of stdin (its owner stopped it, or died) or on SIGTERM it prints
its counts as one JSON line and exits: it never outlives the process that started it.

It runs as a process of its own so that the event loop of whoever uses it (a test, the chaos
benchmark) cannot starve it. ``reset_proxy()`` starts one and hands back its port and controls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

READY = "reset proxy listening on "
CHUNK_BYTES = 65536
_LINGER_NOW = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


@dataclass
class _Link:
    """One proxied connection: the client's side and Redis's side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class Proxy:
    def __init__(self, target_port: int, rng: random.Random, reset_every_s: tuple[float, float]) -> None:
        self._target_port = target_port
        self._rng = rng
        self._reset_every_s = reset_every_s
        self._links: list[_Link] = []
        self.resetting = True
        self.counts = {"connections": 0, "resets": 0}

    async def serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            _reset(client_w)
            return
        link = _Link(client_w, up_w)
        self.counts["connections"] += 1
        self._links.append(link)
        link.pumps = [asyncio.create_task(_pump(client_r, up_w)), asyncio.create_task(_pump(up_r, client_w))]
        try:
            await asyncio.gather(*link.pumps, return_exceptions=True)
        except asyncio.CancelledError:  # the proxy is stopping: its connections close with it
            pass
        finally:
            if link in self._links:
                self._links.remove(link)
            client_w.close()
            up_w.close()

    async def reset_forever(self) -> None:
        low_s, high_s = self._reset_every_s
        while True:
            await asyncio.sleep(self._rng.uniform(low_s, high_s))  # the random interval between resets
            if self.resetting and self._links:
                try:
                    self.reset(self._rng.choice(self._links))
                except Exception as exc:  # one odd connection must not end the resets for good
                    self.counts["reset_errors"] = self.counts.get("reset_errors", 0) + 1
                    print(f"reset failed: {exc!r}", file=sys.stderr, flush=True)

    def reset(self, link: _Link) -> None:
        self._links.remove(link)
        self.counts["resets"] += 1
        _reset(link.client)
        _reset(link.upstream)
        for pump in link.pumps:
            pump.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NOW)
    writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):  # the other side went away: the gather in serve() closes both
        return


async def _commands(proxy: Proxy) -> None:
    """Read the owner's commands on stdin until it closes (the owner stopped or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode().strip()
        if command in ("pause", "resume"):
            proxy.resetting = command == "resume"
            print(command + "d", flush=True)


async def run(listen_port: int, target_port: int, seed: int, reset_every_s: tuple[float, float]) -> None:
    proxy = Proxy(target_port, random.Random(seed), reset_every_s)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", listen_port)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    port = server.sockets[0].getsockname()[1]
    print(f"{READY}{port}", flush=True)
    tasks = [asyncio.create_task(_commands(proxy)), asyncio.create_task(proxy.reset_forever())]
    ended = asyncio.create_task(stopped.wait())
    await asyncio.wait([tasks[0], ended], return_when=asyncio.FIRST_COMPLETED)
    server.close()
    print(json.dumps(proxy.counts), flush=True)
    for task in [*tasks, ended]:
        task.cancel()


def _interval(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    bounds = (float(low), float(high or low))
    if not 0 < bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH seconds with 0 < LOW <= HIGH, got {text!r}")
    return bounds


class ResetProxy:
    """A running ``python -m bench.reset_proxy`` process, seen from its owner."""

    def __init__(self, process: subprocess.Popen[str], stdin: IO[str], stdout: IO[str], port: int) -> None:
        self._process = process
        self._stdin = stdin
        self._stdout = stdout
        self.port = port

    def url(self, redis_url: str) -> str:
        """``redis_url`` (``redis://host:port...``) pointed at the proxy instead."""
        scheme, _, rest = redis_url.partition("://")
        host_port, slash, path = rest.partition("/")
        credentials, at, _ = host_port.rpartition("@")
        return f"{scheme}://{credentials}{at}127.0.0.1:{self.port}{slash}{path}"

    def pause(self) -> None:
        """Stop resetting; returns once the proxy has stopped (connections are still forwarded)."""
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def stop(self) -> dict[str, Any]:
        """End the proxy (every connection through it closes); its counts of connections and resets."""
        self._stdin.close()
        counts: dict[str, Any] = json.loads(self._stdout.readline() or "{}")
        self._process.wait(10)
        self._stdout.close()
        return counts

    def _command(self, command: str) -> None:
        self._stdin.write(command + "\n")
        self._stdin.flush()
        acknowledged = self._stdout.readline().strip()
        assert acknowledged == command + "d", f"reset proxy answered {acknowledged!r} to {command!r}"


@contextlib.contextmanager
def reset_proxy(target_port: int, *, seed: int = 1, reset_every_s: str = "0.2,1") -> Iterator[ResetProxy]:
    """Start a reset proxy in front of ``127.0.0.1:target_port``; it stops when the block ends."""
    command = [sys.executable, "-m", "bench.reset_proxy", "--target-port", str(target_port)]
    command += ["--seed", str(seed), "--reset-every-s", reset_every_s]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert process.stdin is not None
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY):
        process.kill()
        process.wait()
        raise RuntimeError(f"the reset proxy did not start (exit code {process.wait()})")
    proxy = ResetProxy(process, process.stdin, process.stdout, int(line.removeprefix(READY)))
    try:
        yield proxy
    finally:
        if process.poll() is None:
            proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-port", type=int, required=True, help="Redis's port on 127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reset-every-s", type=_interval, default=(0.2, 1.0), metavar="LOW,HIGH")
    args = parser.parse_args()
    asyncio.run(run(args.listen_port, args.target_port, args.seed, args.reset_every_s))


if __name__ == "__main__":
    main()
