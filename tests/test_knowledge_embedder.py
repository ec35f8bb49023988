"""The embeddings client: checked responses, retried by policy, and a clear line for a server without them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import FatalProviderError, RetryableProviderError
from tests.conftest import Simulator
from worker.answering.gate import GateMemory, ProviderGate
from worker.knowledge.embedder import Embedder, vectors
from worker.settings import provider_client


@pytest.fixture
async def embedder(sim: Simulator, redis: Redis, config: AskqConfig) -> AsyncIterator[Embedder]:
    client = provider_client(config)
    endpoint = f"{client.base_url.host}:{client.base_url.port}"
    gate = ProviderGate(redis, "knowledge:menu", endpoint, config, GateMemory())
    yield Embedder(client, config, asyncio.Semaphore(4), gate, model="text-embedding-3-small", dimensions=64)
    await client.close()


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


def test_vectors_reads_float_lists_by_index() -> None:
    """A server answering lists of floats, out of order, is read by each item's index."""
    body = {"data": [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 0.0]}]}
    assert vectors(body, 2, 2).tolist() == [[3.0, 0.0], [0.0, 2.0]]
