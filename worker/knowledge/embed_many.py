"""Embedding many texts for a build: many inputs a request, several requests in flight.

One request per chunk would be thousands of round trips; one request for all would be past the
provider's limits (2048 inputs, and a total of tokens). Requests of up to ``REQUEST_INPUTS`` inputs
and about ``REQUEST_TOKENS`` tokens are sent together, as many in flight as the semaphore lets
(``limits.concurrency``), each retried on its own by the embedder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import numpy as np
from redis.asyncio import Redis

from common.config import AskqConfig
from common.tokens import estimate_tokens
from worker.answering.admission import GateMemory
from worker.answering.client import embeddings_client, provider_client
from worker.answering.gate import ProviderGate
from worker.answering.provider import ChatProvider
from worker.knowledge.embedder import Embedder
from worker.knowledge.index import Matrix

REQUEST_INPUTS = 128
REQUEST_TOKENS = 100_000
"""An estimate that errs high (``common.tokens``): OpenAI takes 300,000 a request."""


def gate_batch(name: str) -> str:
    """What the provider gate calls a base's requests: ':' is never in a batch's name, so no batch's
    halt is this one's."""
    return f"knowledge:{name}"


@asynccontextmanager
async def base_embedder(
    redis: Redis, config: AskqConfig, name: str, *, model: str, dimensions: int | None
) -> AsyncIterator[Embedder]:
    """An embedder for a command (build, search) with its own client, semaphore and gate, closed after.

    The provider is askq's (OPENAI_BASE_URL, OPENAI_API_KEY; ASKQ_EMBEDDINGS_BASE_URL for a server of
    embeddings apart); its cooldown, pace and in-flight limit in Redis are the workers', so a build
    shares the provider with the answers being given."""
    client = embeddings_client(config) or provider_client(config)
    memory = GateMemory()
    try:
        gate = ProviderGate(redis, gate_batch(name), ChatProvider(client).endpoint, config, memory)
        semaphore = asyncio.Semaphore(config.limits.concurrency)
        yield Embedder(client, config, semaphore, gate, model=model, dimensions=dimensions)
    finally:
        await memory.in_flight.aclose()
        await client.close()


def request_batches(texts: Sequence[str]) -> list[range]:
    """The inputs of each request, in order: at most ``REQUEST_INPUTS``, about ``REQUEST_TOKENS``."""
    batches: list[range] = []
    start = tokens = 0
    for index, text in enumerate(texts):
        cost = estimate_tokens(text)
        if index > start and (index - start >= REQUEST_INPUTS or tokens + cost > REQUEST_TOKENS):
            batches.append(range(start, index))
            start, tokens = index, 0
        tokens += cost
    if start < len(texts):
        batches.append(range(start, len(texts)))
    return batches


async def embed_many(
    embedder: Embedder, texts: Sequence[str], width: int | None, on_embedded: Callable[[int], None]
) -> Matrix:
    """Unit vectors of ``texts`` in order, each of ``width`` dimensions (None: the first response's, the
    rest held to it); ``on_embedded(n)`` after each request's ``n`` are in. The first error cancels
    the requests still going and is raised."""
    batches = request_batches(texts)
    if not batches:
        return np.empty((0, width or 0), dtype=np.float32)

    async def one(batch: range) -> Matrix:
        vectors = await embedder.embed(texts[batch.start : batch.stop], expect_dimensions=width)
        on_embedded(len(batch))
        return vectors

    done: list[Matrix] = []
    if width is None:
        done.append(await one(batches.pop(0)))  # alone: it sets the width the others are held to
        width = done[0].shape[1]
    tasks = [asyncio.create_task(one(batch)) for batch in batches]
    try:
        done.extend(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return np.vstack(done)
