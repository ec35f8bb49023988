"""A worker process's copy of each knowledge base's matrix: loaded once, again only for a new version.

The base's meta (a small hash) is read at most every ``CHECK_EVERY_S`` a base, so a rebuild reaches
every worker within about that long, at one round trip a second rather than one a question; a
load of a new version is shared by the jobs that want it meanwhile. An index built with another
model or dimension than jobs.yaml says is refused before its matrix is read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from common.errors import KnowledgeError
from common.knowledge import KnowledgeConfig
from common.knowledge_store import usable_meta
from worker.knowledge.index import KnowledgeIndex
from worker.knowledge.index_store import load_index

log = structlog.get_logger(__name__)

CHECK_EVERY_S = 1.0
"""How long a process answers from its copy of a base before it looks for a new version."""


@dataclass
class _Held:
    index: KnowledgeIndex
    checked_at: float
    """When the base's meta last named this version (monotonic)."""


class KnowledgeCache:
    def __init__(self, redis: Redis, *, check_every_s: float | None = None) -> None:
        self._redis = redis
        self._check_every_s = CHECK_EVERY_S if check_every_s is None else check_every_s
        self._held: dict[str, _Held] = {}
        self._looking: dict[str, asyncio.Task[KnowledgeIndex]] = {}
        self.loads = 0
        """Matrices read from Redis (not meta reads): what a version change costs."""

    async def index(self, name: str, config: KnowledgeConfig, *, fresh: bool = False) -> KnowledgeIndex:
        """The base's current index; ``fresh``: look at its meta now, not up to a second ago (a chunk
        was found gone: a rebuild replaced the version this process holds)."""
        held = self._held.get(name)
        if held is not None and not fresh and time.monotonic() - held.checked_at < self._check_every_s:
            index = held.index
        else:
            index = await self._look(name, config)
        problem = index.meta.mismatch(config)
        if problem is not None:  # a version loaded for the meta just read, replaced meanwhile
            raise KnowledgeError(problem)
        return index

    async def _look(self, name: str, config: KnowledgeConfig) -> KnowledgeIndex:
        """The current version, read once for every job that asks meanwhile."""
        task = self._looking.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._current(name, config))
            self._looking[name] = task
            task.add_done_callback(lambda _: self._looking.pop(name, None))
        # One job cancelled must not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _current(self, name: str, config: KnowledgeConfig) -> KnowledgeIndex:
        checked_at = time.monotonic()
        try:
            meta = await usable_meta(self._redis, name, config)  # before a matrix that cannot answer is read
        except KnowledgeError:
            self._held.pop(name, None)  # what it held is not the base's current version
            raise
        held = self._held.get(name)
        if held is not None and held.index.meta.version == meta.version:
            held.checked_at = checked_at
            return held.index
        index = await load_index(self._redis, name)
        self.loads += 1
        log.info(
            "knowledge base loaded",
            base=name,
            version=index.meta.version,
            chunks=index.meta.chunks,
            dimensions=index.meta.dimensions,
            bytes=index.matrix.nbytes,
        )
        # Replacing the entry drops this process's hold on the old matrix; jobs searching it keep
        # it until they are done.
        self._held[name] = _Held(index, checked_at)
        return index
