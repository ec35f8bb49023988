"""The embeddings client: checked responses, retried by policy, and a clear line for a server without them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import numpy as np
import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.errors import FatalProviderError, ProviderUnreachableError, RetryableProviderError
from tests.conftest import Simulator
from tests.helpers import answers_again, eventually
from worker.answering.admission import GateMemory
from worker.answering.client import provider_client
from worker.answering.gate import ProviderGate
from worker.knowledge.embedder import Embedder, vectors

Make = Callable[[AskqConfig], Embedder]


@pytest.fixture
async def make_embedder(sim: Simulator, redis: Redis) -> AsyncIterator[Make]:
    """Embedders of 64 dimensions for text-embedding-3-small under ``config``, against the simulator."""
    clients: list[AsyncOpenAI] = []

    def make(config: AskqConfig) -> Embedder:
        client = provider_client(config)
        clients.append(client)
        gate = ProviderGate(redis, "knowledge:menu", endpoint_of(client), config, GateMemory())
        return Embedder(
            client, config, asyncio.Semaphore(4), gate, model="text-embedding-3-small", dimensions=64
        )

    yield make
    for client in clients:
        await client.close()


def endpoint_of(client: AsyncOpenAI) -> str:
    return f"{client.base_url.host}:{client.base_url.port}"


@pytest.fixture
def embedder(make_embedder: Make, config: AskqConfig) -> Embedder:
    return make_embedder(config)


async def test_embeds_in_order_as_unit_rows(embedder: Embedder, sim: Simulator) -> None:
    """One request for every text; rows in input order, of the asked width, each of length 1."""
    texts = ["Iced Americano 2,500 won", "딸기라떼는 4월까지", "Wi-Fi password on the receipt"]
    matrix = await embedder.embed(texts)
    assert matrix.shape == (3, 64)
    assert matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    alone = await embedder.embed(texts[1:2])
    assert np.allclose(alone[0], matrix[1], atol=1e-6)
    assert (sim.stats()["embedding_requests"], sim.stats()["embedding_inputs"]) == (2, 4)


async def test_a_wrong_count_or_width_is_a_failed_attempt_retried(embedder: Embedder, sim: Simulator) -> None:
    """A vector missing, then one of the wrong width: each attempt fails, the third succeeds."""
    sim.configure(bad_embeddings=2)
    matrix = await embedder.embed(["a latte", "an ade"])
    assert matrix.shape == (2, 64)
    assert sim.stats()["embedding_requests"] == 3


async def test_a_server_without_embeddings_is_named_once(embedder: Embedder, sim: Simulator) -> None:
    """A 404 is fatal at once, naming the base URL; no retry is spent on it."""
    sim.configure(embeddings=False)
    with pytest.raises(
        FatalProviderError, match=r"the provider at http://127\.0\.0\.1:\d+/v1 has no /embeddings"
    ):
        await embedder.embed(["a latte"])
    assert sim.stats()["embedding_requests"] == 1


async def test_a_server_error_is_retried_by_policy(embedder: Embedder, sim: Simulator) -> None:
    """A 500 on every request spends the policy's attempts, then raises the provider's error."""
    sim.configure(rate_500=1.0)
    with pytest.raises(RetryableProviderError, match="HTTP 500"):
        await embedder.embed(["a latte"])
    assert sim.stats()["embedding_requests"] == 4  # the config fixture's attempts


def test_vectors_refuses_a_repeated_index() -> None:
    """Two vectors claiming one index would leave another input without one: refused."""
    body = {"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 0, "embedding": [0.0, 1.0]}]}
    with pytest.raises(RetryableProviderError, match="repeated index 0"):
        vectors(body, 2, None)


def test_vectors_refuses_nan_and_infinity() -> None:
    """A vector with NaN or infinity would top every search: the attempt fails, to be retried."""
    for bad in ("NaN", "Infinity"):
        body = {"data": [{"index": 0, "embedding": [1.0, float(bad)]}]}
        with pytest.raises(RetryableProviderError, match="NaN or infinite"):
            vectors(body, 1, 2)


def test_vectors_pools_one_vector_per_token_by_their_mean() -> None:
    """A server answering a vector per token (no pooling: llama-cpp-python with a chat model) is read
    as their mean, the usual pooling."""
    body = {
        "data": [{"index": 0, "embedding": [[1.0, 0.0], [3.0, 2.0]]}, {"index": 1, "embedding": [[0.0, 4.0]]}]
    }
    assert vectors(body, 2, 2).tolist() == [[2.0, 1.0], [0.0, 4.0]]


def test_vectors_reads_float_lists_by_index() -> None:
    """A server answering lists of floats, out of order, is read by each item's index."""
    body = {"data": [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 0.0]}]}
    assert vectors(body, 2, 2).tolist() == [[3.0, 0.0], [0.0, 2.0]]


async def test_a_provider_away_is_waited_for_without_spending_attempts(
    make_embedder: Make, sim: Simulator, redis: Redis, config: AskqConfig
) -> None:
    """With one attempt allowed, a request sent while the server is down waits for it and succeeds."""
    embedder = make_embedder(
        config.model_copy(update={"retry": config.retry.model_copy(update={"attempts": 1})})
    )
    sim.down(2)
    matrix = await embedder.embed(["a latte"])
    assert matrix.shape == (1, 64)
    assert not await redis.exists(keys.provider_outage(endpoint_of(embedder._client)))  # the outage ended


async def test_a_provider_away_past_the_outage_wait_fails_the_request(
    make_embedder: Make, sim: Simulator, config: AskqConfig
) -> None:
    """Past provider.outage_wait_s the request fails, saying for how long the provider was away."""
    provider = config.provider.model_copy(update={"outage_wait_s": 0.5})
    embedder = make_embedder(config.model_copy(update={"provider": provider}))
    sim.down(3)
    with pytest.raises(ProviderUnreachableError, match="the provider was unreachable for"):
        await embedder.embed(["a latte"])
    await eventually(lambda: answers_again(sim), timeout_s=10, tolerate=(aiohttp.ClientError,))
