"""What a question batcher's requests go through: an ``Embedder`` behind the batch's provider gate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from openai import AsyncOpenAI
from redis.asyncio import Redis

from common.config import AskqConfig
from worker.answering.admission import GateMemory
from worker.answering.gate import ProviderGate
from worker.knowledge.batcher import Send
from worker.knowledge.cache import KnowledgeCache
from worker.knowledge.embedder import Embedder
from worker.knowledge.index import Matrix
from worker.knowledge.retrieval import MakeSend, Retriever


def retriever(
    redis: Redis,
    client: AsyncOpenAI,
    config: AskqConfig,
    semaphore: asyncio.Semaphore,
    gate_memory: GateMemory,
    endpoint: str,
) -> Retriever:
    """The process's retriever, made in the worker's startup."""
    sends = embedder_sends(redis, client, config, semaphore, gate_memory, endpoint)
    return Retriever(redis, KnowledgeCache(redis), sends)


def embedder_sends(
    redis: Redis,
    client: AsyncOpenAI,
    config: AskqConfig,
    semaphore: asyncio.Semaphore,
    gate_memory: GateMemory,
    endpoint: str,
) -> MakeSend:
    """Requests that hold a place of the semaphore chat calls hold, and pass the batch's gate (its halt,
    the provider's cooldown, pace and in-flight limit), retried by the retry policy."""

    def make_send(model: str, dimensions: int | None, expect: int, batch: str) -> Send:
        gate = ProviderGate(redis, batch, endpoint, config, gate_memory)
        embedder = Embedder(client, config, semaphore, gate, model=model, dimensions=dimensions)

        async def send(texts: Sequence[str]) -> Matrix:
            return await embedder.embed(texts, expect_dimensions=expect)

        return send

    return make_send
