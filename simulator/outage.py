"""Being down for a while (``POST /_sim/down``): the listening socket and every open connection are
closed, so clients are refused, then the simulator listens again on the same port."""

from __future__ import annotations

import asyncio

from aiohttp import web

DOWN_KEY_NAME = "simulator_listener"


class Listener:
    """What ``start_simulator`` bound: enough to stop listening and to listen again on the same port."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, backlog: int) -> None:
        self._runner = runner
        self._host = host
        self._port = port
        self._backlog = backlog
        self._site: web.TCPSite | None = None
        self._back: asyncio.Task[None] | None = None
        self.downs = 0

    async def listen(self) -> int:
        """Listen on the port (a free one the first time, when it is 0); returns it."""
        self._site = web.TCPSite(self._runner, self._host, self._port, backlog=self._backlog)
        await self._site.start()
        if self._port == 0:
            self._port = int(self._runner.addresses[0][1])
        return self._port

    @property
    def is_down(self) -> bool:
        return self._back is not None and not self._back.done()

    async def down(self, seconds: float, keep: web.BaseRequest | None = None) -> None:
        """Refuse connections for ``seconds``: stop listening and drop every connection but ``keep``'s."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        if server is not None:
            for handler in server.connections:
                if keep is None or handler is not keep.protocol:
                    handler.force_close()
        self.downs += 1
        if self._back is not None:
            self._back.cancel()
        self._back = asyncio.create_task(self._up_after(seconds))

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.listen()

    async def close(self) -> None:
        if self._back is not None:
            self._back.cancel()


LISTENER_KEY = web.AppKey(DOWN_KEY_NAME, Listener)
