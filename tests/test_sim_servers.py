"""The simulator as the servers people run locally: a few slots with silent queueing, streams cut for a
waiting request (llama-cpp-python), and being down for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from simulator import RunningSimulator, SimulatorSettings, start_simulator
from tests.helpers import eventually

# Streams of a second: long enough to look at what waits behind them.
SLOW = SimulatorSettings(ttft_ms=0, tokens_per_s=20, answer_tokens=20)
FINISHED = b'"finish_reason":"stop"'
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "stream": True}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with await start_simulator(SLOW) as running:
        yield running


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per request: a waiting request must not queue behind another on a shared one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


async def _open(http: aiohttp.ClientSession, sim: RunningSimulator) -> aiohttp.ClientResponse:
    """A streamed chat request, returned once its headers have arrived."""
    return await http.post(f"{sim.base_url}/chat/completions", json=BODY)


async def _waiting(sim: RunningSimulator, count: int) -> bool:
    return bool(sim.stats()["max_waiting_for_slot"] >= count)


async def test_requests_beyond_the_slots_wait_without_a_byte_first_come_first_served(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """With one slot, a second and third request get no headers until the one before them ends."""
    sim.update_settings(slots=1)
    first = await _open(http, sim)
    second = asyncio.create_task(_open(http, sim))
    await eventually(lambda: _waiting(sim, 1))
    third = asyncio.create_task(_open(http, sim))
    await eventually(lambda: _waiting(sim, 2))
    assert not second.done()  # not even the headers
    assert not third.done()
    assert FINISHED in await first.read()
    answer = await second
    assert not third.done()  # behind the second, which streams now
    assert FINISHED in await answer.read()
    assert FINISHED in await (await third).read()


async def test_a_waiting_request_ends_the_running_stream_without_a_finish_reason(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """interrupt_on_wait: the running stream ends with [DONE] and no finish_reason; the next is whole."""
    sim.update_settings(slots=1, interrupt_on_wait=True)
    first = await _open(http, sim)
    second = asyncio.create_task(_open(http, sim))
    cut = await first.read()
    assert cut.endswith(b"data: [DONE]\n\n")
    assert FINISHED not in cut
    assert FINISHED in await (await second).read()
    assert sim.stats()["streams_interrupted"] == 1


async def test_down_refuses_connections_drops_open_ones_then_listens_again(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """POST /_sim/down: open streams are dropped, connects refused, and the same port answers after."""
    streaming = await _open(http, sim)
    async with http.post(f"{sim.url}/_sim/down", json={"seconds": 1}) as resp:
        assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await streaming.read()
    with pytest.raises(aiohttp.ClientConnectorError):
        await _open(http, sim)

    async def answers() -> bool:
        response = await _open(http, sim)
        return FINISHED in await response.read()

    await eventually(answers, timeout_s=5, tolerate=(aiohttp.ClientConnectorError,))


@pytest.mark.parametrize("body", [{}, {"seconds": "x"}, {"seconds": -1}])
async def test_down_needs_a_number_of_seconds(
    sim: RunningSimulator, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    """A down without a sensible number of seconds is refused with a 400, and nothing goes down."""
    async with http.post(f"{sim.url}/_sim/down", json=body) as resp:
        assert resp.status == 400
    assert FINISHED in await (await _open(http, sim)).read()
