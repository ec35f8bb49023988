"""``askq knowledge search``: the chunks a question would be given, with their scores, for tuning a base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import InputError, KnowledgeError
from common.knowledge import KnowledgeMeta, StoredChunk, known_base, not_built
from common.knowledge_store import read_chunks, read_meta
from worker.knowledge.embed_many import base_embedder
from worker.knowledge.index_store import load_index


@dataclass(frozen=True)
class Found:
    score: float
    chunk: StoredChunk

    def to_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 6), **self.chunk.model_dump()}


async def search_base(
    redis: Redis, config: AskqConfig, name: str, question: str, k: int
) -> tuple[KnowledgeMeta, list[Found]]:
    """The ``k`` chunks of ``name`` closest to ``question``, best first, and the version searched."""
    base = known_base(config.knowledge, name)
    if not question.strip():
        raise InputError("the question is empty")
    meta = await read_meta(redis, name)
    if meta is None:
        raise KnowledgeError(not_built(name))
    reason = meta.mismatch(base)  # before anything is sent: a question embedded otherwise matches nothing
    if reason is not None:
        raise KnowledgeError(reason)
    index = await load_index(redis, name)
    async with base_embedder(
        redis, config, name, model=base.embedding_model, dimensions=base.dimensions
    ) as embedder:
        query = await embedder.embed([question], expect_dimensions=index.meta.dimensions)
    hits = index.search(query, k)[0]
    chunks = await read_chunks(redis, index.meta, [hit.row for hit in hits])
    found = [Found(hit.score, chunk) for hit, chunk in zip(hits, chunks, strict=True) if chunk is not None]
    return index.meta, found
