"""A question's knowledge: its embedding (micro-batched), the closest chunks, the text for the prompt.

The chunks come from Redis in one ``HMGET`` per question: the process holds only the matrix. A
row found gone means a rebuild replaced the version this process searched (and the replaced one
expired): the base is looked at again and searched once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import KnowledgeError
from common.knowledge import KnowledgeConfig, StoredChunk
from common.knowledge_store import read_chunks
from common.payload import JobPayload
from common.sources import Source
from worker.knowledge.batcher import QuestionBatcher, Send, Vector
from worker.knowledge.cache import KnowledgeCache
from worker.knowledge.index import Hit, KnowledgeIndex

MakeSend = Callable[[str, int | None, int, str], Send]
"""(model, dimensions asked, dimensions expected, batch) -> what embeds texts in one request."""
SCORE_PLACES = 4
"""A score as the event says it and the record stores it (``sources_json``): the same number."""
SEARCHES = 2
"""A search, and one more after a rebuild replaced the version searched."""


@dataclass(frozen=True)
class Retrieved:
    knowledge: str
    """What fills ``{knowledge}``: each chunk under a line naming its source, best first."""
    sources: list[Source]


OFF_LOOP_BYTES = 4 * 1024 * 1024
"""Above this much matrix (2,048 chunks of 512 dimensions), a search leaves the event loop: 100,000
chunks of 512 take about 6 ms a question (the benchmark)."""


class Retriever:
    """The process's knowledge: its copies of the bases, and one batcher per embedding model and
    dimension and batch (each batch's requests pass its own gate: a refused key halts that batch)."""

    def __init__(self, redis: Redis, cache: KnowledgeCache, make_send: MakeSend) -> None:
        self._redis = redis
        self.cache = cache
        self._make_send = make_send
        self._batchers: dict[tuple[str, int | None, int, str], QuestionBatcher] = {}

    async def for_job(self, config: AskqConfig, payload: JobPayload) -> Retrieved | None:
        """The chunks for a job's prompt, when its type has a knowledge base (the question of a line
        with its own messages is its last user message); None for a type without one."""
        job_type = config.job_type(payload.job_type)
        if job_type.knowledge is None:
            return None
        base = config.knowledge[job_type.knowledge]
        question, top_k = payload.question, job_type.top_k
        return await self.retrieve(job_type.knowledge, base, question, top_k, batch=payload.batch)

    async def retrieve(
        self, name: str, config: KnowledgeConfig, question: str, top_k: int, *, batch: str
    ) -> Retrieved:
        index = await self.cache.index(name, config)
        vector = await self._embed(config, index, question, batch)
        for search in range(SEARCHES):
            hits = await search_off_loop(index, vector, top_k)
            chunks = await read_chunks(self._redis, index.meta, [hit.row for hit in hits])
            found = [chunk for chunk in chunks if chunk is not None]
            if len(found) == len(chunks):
                return _retrieved(hits, found)
            if search + 1 < SEARCHES:
                fresh = await self.cache.index(name, config, fresh=True)
                if fresh.meta.dimensions != index.meta.dimensions:
                    vector = await self._embed(config, fresh, question, batch)
                index = fresh
        raise KnowledgeError(f"knowledge base {name!r} changed during the search; the job can run again")

    async def _embed(self, config: KnowledgeConfig, index: KnowledgeIndex, text: str, batch: str) -> Vector:
        key = (config.embedding_model, config.dimensions, index.meta.dimensions, batch)
        batcher = self._batchers.get(key)
        if batcher is None:
            self._forget_idle()
            send = self._make_send(*key)
            batcher = self._batchers[key] = QuestionBatcher(send)
        return await batcher.embed(text)

    def _forget_idle(self) -> None:
        """Batchers of batches done with: a long-running worker sees many batches."""
        for key in [key for key, batcher in self._batchers.items() if batcher.idle]:
            del self._batchers[key]

    async def aclose(self) -> None:
        await asyncio.gather(*(batcher.aclose() for batcher in self._batchers.values()))
        self._batchers.clear()


async def search_off_loop(index: KnowledgeIndex, vector: Vector, top_k: int) -> list[Hit]:
    """The question's hits; a large base is searched in a thread, where the matrix product (which
    lets go of the GIL) holds back no stream or lease renewal of the process meanwhile."""
    if index.matrix.nbytes <= OFF_LOOP_BYTES:
        return index.search(vector[None, :], top_k)[0]  # a few hundred µs: not worth a thread's hop
    return (await asyncio.to_thread(index.search, vector[None, :], top_k))[0]


def _retrieved(hits: Sequence[Hit], chunks: Sequence[StoredChunk]) -> Retrieved:
    sources = [
        Source(file=chunk.file, chunk=chunk.position, score=round(hit.score, SCORE_PLACES))
        for hit, chunk in zip(hits, chunks, strict=True)
    ]
    return Retrieved(knowledge_text(chunks), sources)


def knowledge_text(chunks: Sequence[StoredChunk]) -> str:
    """Each chunk under ``[n] FILE (chunk P)``, separated by blank lines: the model can name its source."""
    return "\n\n".join(
        f"[{number}] {chunk.file} (chunk {chunk.position})\n{chunk.text.strip()}"
        for number, chunk in enumerate(chunks, start=1)
    )
