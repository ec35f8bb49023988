"""Start and stop a simulator inside the current event loop."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from .app import create_app
from .outage import LISTENER_KEY, Listener
from .settings import SimulatorSettings
from .state import STATE_KEY, SimState

# Open streams get this long to finish on close; aiohttp may wait it twice before force-closing,
# so it stays short: a simulator owes no grace to half-served clients.
SHUTDOWN_TIMEOUT_S = 0.25
# Benchmarks open hundreds of connections at once; the default backlog would drop SYNs.
LISTEN_BACKLOG = 2048


class RunningSimulator:
    """A bound, serving simulator; `base_url` is what an OpenAI client takes."""

    def __init__(
        self, runner: web.AppRunner, state: SimState, host: str, port: int, listener: Listener
    ) -> None:
        self._runner = runner
        self._listener = listener
        self._state = state
        self.host = host
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.base_url = f"{self.url}/v1"

    @property
    def settings(self) -> SimulatorSettings:
        """The current settings, including updates made through `/_sim/settings`."""
        return self._state.settings

    def update_settings(self, **changes: Any) -> SimulatorSettings:
        """In-process equivalent of `POST /_sim/settings`; raises SettingsError."""
        return self._state.update_settings(changes)

    def reset(self) -> None:
        """In-process equivalent of `POST /_sim/reset`."""
        self._state.reset()

    def stats(self) -> dict[str, Any]:
        """In-process equivalent of `GET /_sim/stats`."""
        return self._state.stats.snapshot()

    async def close(self) -> None:
        """Stop serving; safe to call more than once."""
        await self._listener.close()
        if self._runner.server is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def start_simulator(
    settings: SimulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Bind and serve in the running loop; port 0 picks a free port (read it from the result)."""
    app = create_app(settings)
    # handler_cancellation: a client that hangs up stops its handler at once, so in_flight stays exact.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    listener = Listener(runner, host, port, LISTEN_BACKLOG)
    app[LISTENER_KEY] = listener  # for `POST /_sim/down`
    await runner.setup()
    try:
        bound_port = await listener.listen()
    except BaseException:
        await runner.cleanup()
        raise
    return RunningSimulator(runner, app[STATE_KEY], host, bound_port, listener)
