"""askq's HTTP transport against the simulator over real HTTP (loopback only): kept-alive connections the
server closed, what a failed connection is called, and the three timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import openai
import pytest
from openai import DefaultAioHttpClient

from common.errors import ProviderError
from tests.conftest import Simulator
from worker.answering.provider import ChatProvider, ChatRequest

BACK_TO_BACK = 150


def _request(question: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": question}], model="gpt-4o-mini")


async def _stream_all(provider: ChatProvider, calls: int, concurrency: int) -> list[BaseException]:
    """``calls`` streamed answers, ``concurrency`` at a time, back to back; the errors they raised."""
    errors: list[BaseException] = []
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            try:
                pieces = [piece async for piece in provider.astream(_request(f"Question {n}"))]
                assert pieces[-1].finish_reason == "stop"
            except ProviderError as exc:
                errors.append(exc)

    await asyncio.gather(*(one(n) for n in range(calls)))
    return errors


# --- The simulator closes connections as llama-server does ----------------------------------------------


@pytest.fixture
async def old_transport(sim: Simulator) -> AsyncIterator[ChatProvider]:
    """openai's DefaultAioHttpClient, the transport askq used before its own."""
    client = openai.AsyncOpenAI(
        base_url=sim.base_url, api_key="sim", max_retries=0, http_client=DefaultAioHttpClient()
    )
    yield ChatProvider(client)
    await client.close()


async def test_close_after_response_makes_the_old_transport_fail(
    sim: Simulator, old_transport: ChatProvider
) -> None:
    """close_after_response reproduces llama-server: a client reusing kept-alive connections fails calls."""
    sim.configure(close_after_response=True)
    errors = await _stream_all(old_transport, BACK_TO_BACK, 1)
    assert errors, "no call failed: the simulator did not close the connections it kept alive"
    assert "timed out" in str(errors[0])  # what askq said before: the defect


async def test_without_close_after_response_the_old_transport_keeps_working(
    sim: Simulator, old_transport: ChatProvider
) -> None:
    """The same calls without close_after_response all succeed: the failures above are the closing's."""
    errors = await _stream_all(old_transport, BACK_TO_BACK, 1)
    assert errors == []
