"""A process's copies of the bases and its retrieval: loads, versions, refusals, a version gone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.errors import KnowledgeError
from common.knowledge import KnowledgeConfig, KnowledgeMeta, StoredChunk
from tests.conftest import Simulator
from tests.knowledge_helpers import FILES, QUESTIONS, build_base, menu_config
from worker.answering.admission import GateMemory
from worker.answering.client import provider_client
from worker.answering.provider import ChatProvider
from worker.knowledge.cache import KnowledgeCache
from worker.knowledge.index import Hit, KnowledgeIndex, normalised
from worker.knowledge.retrieval import OFF_LOOP_BYTES, Retriever, knowledge_text, search_off_loop
from worker.knowledge.senders import embedder_sends

MakeRetriever = Callable[[AskqConfig, KnowledgeCache], Retriever]
REBUILT = {**FILES, "kb/menu/wifi.md": ["The wifi password is sunrise77 since the rebuild."]}


@pytest.fixture
async def make_retriever(redis: Redis, sim: Simulator) -> AsyncIterator[MakeRetriever]:
    """Retrievers over the simulator, closed at the end."""
    made: list[Retriever] = []
    clients = []

    def make(config: AskqConfig, cache: KnowledgeCache) -> Retriever:
        client = provider_client(config)
        clients.append(client)
        endpoint = ChatProvider(client).endpoint
        sends = embedder_sends(redis, client, config, asyncio.Semaphore(8), GateMemory(), endpoint)
        made.append(Retriever(redis, cache, sends))
        return made[-1]

    yield make
    for retriever in made:
        await retriever.aclose()
    for client in clients:
        await client.close()


async def test_a_base_is_loaded_once_for_many_questions_at_once(
    redis: Redis, sim: Simulator, tmp_path: Path, make_retriever: MakeRetriever
) -> None:
    """Questions asked together share one load of the matrix and each get their planted chunk first."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    cache = KnowledgeCache(redis)
    retriever = make_retriever(config, cache)
    base = config.knowledge["menu"]
    found = await asyncio.gather(
        *(retriever.retrieve("menu", base, question, 2, batch="b") for question, _ in QUESTIONS.values())
    )
    assert cache.loads == 1
    assert [retrieved.sources[0].file for retrieved in found] == [file for _, file in QUESTIONS.values()]


async def test_a_new_version_is_loaded_and_an_unchanged_one_is_not(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """Looking at the meta each time, the matrix is read again only after a rebuild."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    cache = KnowledgeCache(redis, check_every_s=0)
    base = config.knowledge["menu"]
    first = await cache.index("menu", base)
    assert (await cache.index("menu", base)) is first
    await build_base(redis, config, REBUILT)
    second = await cache.index("menu", base)
    assert (second.meta.version, cache.loads) == (first.meta.version + 1, 2)


async def test_not_built_and_mismatched_bases_are_refused_without_a_load(
    redis: Redis, sim: Simulator, tmp_path: Path
) -> None:
    """No base: the advice to build it; a base at another dimension: the reason; no matrix read either way."""
    config = menu_config(tmp_path)
    cache = KnowledgeCache(redis)
    with pytest.raises(KnowledgeError, match=r"^knowledge base 'menu' is not built: run `askq knowledge"):
        await cache.index("menu", config.knowledge["menu"])
    await build_base(redis, config, dimensions=64)
    with pytest.raises(KnowledgeError, match="built with text-embedding-3-small at 64 dimensions"):
        await cache.index("menu", config.knowledge["menu"])
    assert cache.loads == 0


async def test_a_version_gone_under_a_search_is_replaced_by_the_current_one(
    redis: Redis, sim: Simulator, tmp_path: Path, make_retriever: MakeRetriever
) -> None:
    """A process holding a version that a rebuild replaced and that expired reloads and searches again."""
    config = menu_config(tmp_path)
    old = await build_base(redis, config)
    cache = KnowledgeCache(redis, check_every_s=3600)  # it would not look at the meta again by itself
    retriever = make_retriever(config, cache)
    base, question = config.knowledge["menu"], QUESTIONS["wifi"][0]
    assert "moonlight42" in (await retriever.retrieve("menu", base, question, 1, batch="b")).knowledge
    await build_base(redis, config, REBUILT)
    await redis.delete(keys.knowledge_data("menu", old.version))  # what its expiry does 10 minutes later
    retrieved = await retriever.retrieve("menu", base, question, 1, batch="b")
    assert "sunrise77" in retrieved.knowledge
    assert cache.loads == 2


def test_the_knowledge_text_names_each_chunks_source_before_it() -> None:
    """Chunks go best first, each under '[n] FILE (chunk P)', separated by blank lines."""
    chunks = [
        StoredChunk(text="Lattes come with oat milk.\n", file="kb/menu/drinks.md", position=2),
        StoredChunk(text="Open at seven.", file="kb/menu/hours.md", position=0),
    ]
    assert knowledge_text(chunks) == (
        "[1] kb/menu/drinks.md (chunk 2)\nLattes come with oat milk.\n\n"
        "[2] kb/menu/hours.md (chunk 0)\nOpen at seven."
    )


async def test_a_large_base_is_searched_off_the_loop_with_the_same_hits() -> None:
    """Past OFF_LOOP_BYTES the search runs in a thread (not on the loop's), and finds the same rows."""
    rng = np.random.default_rng(5)
    matrix = normalised(rng.standard_normal((3000, 512)).astype(np.float32))
    assert matrix.nbytes > OFF_LOOP_BYTES
    index = KnowledgeIndex(KnowledgeMeta.draft("big", KnowledgeConfig(files="kb/*.md"), 512), matrix)
    question = matrix[1234] + 0.01 * normalised(rng.standard_normal((1, 512)).astype(np.float32))[0]
    loop_thread = threading.get_ident()
    searched_in: list[int] = []
    search = index.search

    def recording(*args: Any) -> list[list[Hit]]:
        searched_in.append(threading.get_ident())
        return search(*args)

    object.__setattr__(index, "search", recording)  # frozen dataclass: record where it runs
    hits = await search_off_loop(index, question, 4)
    assert hits[0].row == 1234
    assert hits == search(question[None, :], 4)[0]
    assert len(searched_in) == 1
    assert searched_in[0] != loop_thread
