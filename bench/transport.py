"""The provider transport alone: streamed calls per second and this process's CPU per call, openai's
aiohttp transport (askq's before issue 18) beside askq's own, against one simulator process.

Both go through ``ChatProvider.astream`` as a worker does, on the worker's loop (uvloop where it is
installed), in alternating rounds so that the shared machine's noise falls on both alike. A second
run against a server that closes each connection after its response (llama-server's habit) counts
the calls each transport fails.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from askq.run_worker import event_loop_factory
from askq.stack import simulator_process
from common.config import parse_config
from common.errors import ProviderError
from worker.answering.client import provider_client
from worker.answering.provider import ChatProvider, ChatRequest

CONCURRENCY = 32
ROUNDS = 5
CLOSING_CALLS = 150
CLOSING_CONCURRENCY = 4


def _openai_aiohttp(base_url: str) -> AsyncOpenAI:
    """The client as askq made it before: openai's DefaultAioHttpClient, one connection per slot."""
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=CONCURRENCY)
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key="bench",
        max_retries=0,
        timeout=httpx2.Timeout(60.0, connect=10.0),
        http_client=DefaultAioHttpClient(limits=limits),
    )


def _askq(base_url: str) -> AsyncOpenAI:
    os.environ["OPENAI_BASE_URL"] = base_url
    return provider_client(parse_config({"limits": {"concurrency": CONCURRENCY}}))


CLIENTS: dict[str, Callable[[str], AsyncOpenAI]] = {"openai_aiohttp": _openai_aiohttp, "askq": _askq}


async def _calls(client: AsyncOpenAI, calls: int, concurrency: int) -> dict[str, Any]:
    """``calls`` streamed answers, ``concurrency`` at a time: time, CPU and failures."""
    provider = ChatProvider(client)
    slots = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one(n: int) -> None:
        request = ChatRequest(messages=[{"role": "user", "content": f"q{n}"}], model="gpt-4o-mini")
        async with slots:
            try:
                async for _ in provider.astream(request):
                    pass
            except ProviderError as exc:
                failures.append(str(exc))

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    elapsed_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {
        "calls_per_s": calls / elapsed_s,
        "cpu_ms_per_call": cpu_s * 1000 / calls,
        "failed": len(failures),
        "said": sorted(set(failures))[:3],
    }


async def _speed(base_url: str, calls: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
    for _ in range(ROUNDS):
        for name, make in CLIENTS.items():
            client = make(base_url)
            try:
                await _calls(client, CONCURRENCY, CONCURRENCY)  # connections opened, code warm
                runs[name].append(await _calls(client, calls, CONCURRENCY))
            finally:
                await client.close()
    result: dict[str, Any] = {
        name: {
            "calls_per_s": statistics.median(run["calls_per_s"] for run in done),
            "cpu_ms_per_call": statistics.median(run["cpu_ms_per_call"] for run in done),
            "failed": sum(run["failed"] for run in done),
        }
        for name, done in runs.items()
    }
    old, new = result["openai_aiohttp"], result["askq"]
    result["calls_ratio"] = new["calls_per_s"] / old["calls_per_s"]
    result["cpu_ratio"] = new["cpu_ms_per_call"] / old["cpu_ms_per_call"]
    return result


async def _closing(base_url: str) -> dict[str, Any]:
    failed: dict[str, Any] = {}
    for name, make in CLIENTS.items():
        client = make(base_url)
        try:
            failed[name] = await _calls(client, CLOSING_CALLS, CLOSING_CONCURRENCY)
        finally:
            await client.close()
    return failed


def run_transport(scale: float) -> dict[str, Any]:
    calls = max(500, int(4000 * scale))
    flags = ["--ttft-ms", "0", "--tokens-per-s", "0", "--answer-tokens", "40"]
    with simulator_process(*flags) as base_url:
        speed = _run(_speed(base_url, calls))
    with simulator_process(*flags, "--close-after-response", "true") as base_url:
        closing = _run(_closing(base_url))
    return {"calls": calls, "concurrency": CONCURRENCY, "speed": speed, "closing": closing}


def _run(work: Any) -> Any:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(work)
