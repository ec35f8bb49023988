"""askq's HTTP transport against the simulator over real HTTP (loopback only): kept-alive connections the
server closed, what a failed connection is called, and the three timeouts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import openai
import pytest
from openai import DefaultAioHttpClient
from structlog.testing import capture_logs

from common.config import AskqConfig, parse_config
from common.errors import (
    FirstByteTimeoutError,
    ProviderError,
    ProviderUnreachableError,
    RetryableProviderError,
    StreamStalledError,
)
from tests.conftest import Simulator
from worker.answering.client import environment_proxy, provider_client
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


# --- Kept-alive connections the server closed ------------------------------------------------------------


def _config(**provider: float) -> AskqConfig:
    return parse_config({"provider": provider})


@pytest.fixture
async def provider(sim: Simulator) -> AsyncIterator[ChatProvider]:
    """askq's own client for the simulator, as a worker makes it."""
    client = provider_client(_config())
    yield ChatProvider(client)
    await client.close()


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_back_to_back_streams_spend_no_attempt_on_dead_connections(
    sim: Simulator, provider: ChatProvider, concurrency: int
) -> None:
    """150 streamed calls to a server that closes every connection it advertised as kept alive: none fails."""
    sim.configure(close_after_response=True)
    errors = await _stream_all(provider, BACK_TO_BACK, concurrency)
    assert errors == []
    assert sim.stats()["responses_by_status"] == {"200": BACK_TO_BACK}  # no request was answered twice


async def test_a_server_that_closes_kept_alive_connections_is_named_once(
    sim: Simulator, provider: ChatProvider
) -> None:
    """The transport notices the server closing connections it said it would keep, and says so once."""
    sim.configure(close_after_response=True)
    with capture_logs() as logs:
        assert await _stream_all(provider, 20, 4) == []
    said = [entry["event"] for entry in logs if "keep-alive" in entry["event"]]
    assert len(said) == 1, logs
    assert f"{_host_port(sim.base_url)} closes each connection" in said[0]


async def test_a_server_that_keeps_its_connections_is_not_named(
    sim: Simulator, provider: ChatProvider
) -> None:
    """A server that keeps its kept-alive connections open draws no such warning."""
    with capture_logs() as logs:
        assert await _stream_all(provider, 20, 4) == []
    assert [entry for entry in logs if "keep-alive" in entry["event"]] == []


def _host_port(base_url: str) -> str:
    return base_url.removeprefix("http://").removesuffix("/v1")


# --- What a failed connection is called ------------------------------------------------------------------


async def _ask(config: AskqConfig | None = None, question: str = "anyone?") -> str:
    """One streamed answer from $OPENAI_BASE_URL through askq's client."""
    client = provider_client(config or _config())
    try:
        pieces = [piece async for piece in ChatProvider(client).astream(_request(question))]
    finally:
        await client.close()
    return "".join(piece.text for piece in pieces)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_says_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port: ProviderUnreachableError naming the host, the port and the refusal."""
    port = _closed_port()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderUnreachableError) as caught:
        await _ask()
    assert str(caught.value) == f"cannot reach the provider at 127.0.0.1:{port}: connection refused"


async def test_a_refused_connection_says_refused_without_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """ainvoke (the whole answer at once) says the same as a stream."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    client = provider_client(_config())
    with pytest.raises(ProviderUnreachableError, match="connection refused"):
        await ChatProvider(client).ainvoke(_request("anyone?"))
    await client.close()


async def test_a_name_that_does_not_resolve_says_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host under .invalid (which never resolves): ProviderUnreachableError naming the DNS lookup."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://askq-test.invalid:8000/v1")
    with pytest.raises(ProviderUnreachableError) as caught:
        await _ask()
    assert str(caught.value).startswith("cannot reach the provider: DNS lookup of askq-test.invalid failed")


async def test_no_connection_within_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener whose backlog is full never completes the handshake: unreachable after connect_timeout_s."""
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        first.connect(("127.0.0.1", port))  # fills the backlog: the next handshake gets no answer
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        with pytest.raises(ProviderUnreachableError) as caught:
            await _ask(_config(connect_timeout_s=0.3))
    assert str(caught.value) == f"cannot reach the provider at 127.0.0.1:{port}: no connection within 0.3 s"


async def test_a_server_that_hangs_up_before_answering_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that closes a fresh connection without a byte of answer: it went away, unreachable."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    async with server:
        with pytest.raises(ProviderUnreachableError) as caught:
            await _ask()
    assert str(caught.value) == (
        f"cannot reach the provider at 127.0.0.1:{port}: it closed the connection before answering"
    )


async def test_a_503_is_unreachable(sim: Simulator) -> None:
    """A 503 (llama-server's "Loading model") says the server is away: unreachable, status kept."""
    with pytest.raises(ProviderUnreachableError) as caught:
        await _ask(question="q [sim:503]")
    assert caught.value.status_code == 503
    assert str(caught.value).startswith("HTTP 503: ")


async def test_a_connection_dropped_mid_stream_says_so(sim: Simulator) -> None:
    """A stream whose connection ends before the body does: retryable, saying it dropped mid-stream."""
    with pytest.raises(RetryableProviderError) as caught:
        await _ask(question="q [sim:cut]")
    assert str(caught.value).startswith("the connection dropped mid-stream")


# --- The three timeouts ---------------------------------------------------------------------------------


async def test_no_first_byte_within_the_first_byte_timeout(sim: Simulator) -> None:
    """Headers later than first_byte_timeout_s: FirstByteTimeoutError naming the wait."""
    sim.configure(slow_start_ms=1500)
    with pytest.raises(FirstByteTimeoutError) as caught:
        await _ask(_config(first_byte_timeout_s=0.3, stall_timeout_s=5))
    assert str(caught.value) == "no first byte from the provider within 0.3 s"


async def test_a_waiting_server_is_given_the_first_byte_timeout_not_the_stall_timeout(sim: Simulator) -> None:
    """Headers later than stall_timeout_s but within first_byte_timeout_s: the answer comes."""
    sim.configure(slow_start_ms=600)
    assert await _ask(_config(first_byte_timeout_s=5, stall_timeout_s=0.2))


async def test_silence_mid_stream_past_the_stall_timeout(sim: Simulator) -> None:
    """Chunks further apart than stall_timeout_s: StreamStalledError naming the silence."""
    sim.configure(tokens_per_s=2)  # half a second between chunks
    with pytest.raises(StreamStalledError) as caught:
        await _ask(_config(first_byte_timeout_s=5, stall_timeout_s=0.2))
    assert str(caught.value) == "the stream stalled mid-answer: no chunk for 0.2 s"


# --- Wiring ------------------------------------------------------------------------------------------------


def test_the_proxy_of_the_environment_is_used_unless_no_proxy_spares_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY reaches the transport for an https provider; NO_PROXY spares a host, as httpx does."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert environment_proxy(None) == "http://proxy.test:3128"  # api.openai.com
    assert environment_proxy("https://llm.test/v1") == "http://proxy.test:3128"
    assert environment_proxy("https://127.0.0.1:8443/v1") is None
    assert environment_proxy("http://llm.test/v1") is None  # no HTTP_PROXY


async def test_a_connection_dropped_before_a_byte_of_body_is_the_provider_going_away(sim: Simulator) -> None:
    """Headers then the end of the connection, no byte of answer (a server killed while its slot read the
    prompt): the provider went away, unreachable, not an answer that failed."""
    sim.configure(cut_after_chunks=0)
    with pytest.raises(ProviderUnreachableError) as caught:
        await _ask(question="q [sim:cut]")
    assert "closed the connection before answering" in str(caught.value)
