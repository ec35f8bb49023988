"""``askq demo --serve``: after the demo, its whole stack stays up behind ``askq serve`` until Ctrl-C,
so the HTTP API, its live events and the OpenAI Batch API can be tried on the demo's batches."""

from __future__ import annotations

import asyncio
import contextlib

from askq.commands import stderr
from askq.serve import uvicorn_server
from askq.terminal import markup
from common.config import AskqConfig
from server.settings import DEFAULT_HOST, ServerSettings

SERVING = "askq serve at"
"""The start of the line the demo prints once the API listens (the tests wait for it)."""
CONSOLE = "the web console is at"


async def serve_until_stopped(
    config: AskqConfig, redis_url: str, port: int, job_id: str, *, console: bool = False
) -> None:
    """``askq serve`` in this process, on loopback, until the demo is interrupted; ``console``: its
    web console's address first (the demo's worker goes on answering what is uploaded there)."""
    settings = ServerSettings(host=DEFAULT_HOST, port=port, redis_url=redis_url)
    server = uvicorn_server(settings, config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it could not start (the port is taken): its error, as it is
            return
        await asyncio.sleep(0.05)  # uvicorn offers no started event: its own flag, polled
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    url = f"http://{DEFAULT_HOST}:{bound}"
    if console:
        stderr.print(
            f"\n[bold]{CONSOLE} {url}/[/]: open it, upload a question file (askq/examples has some), "
            f"and watch the answers arrive; this job streams at {url}/jobs/{markup(job_id)}"
        )
    stderr.print(
        f"\n[bold]{SERVING} {url}[/] (API docs at {url}/docs); Ctrl-C stops it all. Try:\n"
        f"  curl -N {url}/api/jobs/{markup(job_id)}/events\n"
        f"  curl {url}/api/batches\n"
        f"  OpenAI(base_url='{url}/v1', api_key='-') for the Batch API (docs/api.md)"
    )
    try:
        await serving
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
