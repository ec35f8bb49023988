"""Reading a built knowledge base from Redis: its meta, its file table, chunks by row. Both sides read
(``askq knowledge list`` and the workers); only ``worker.knowledge`` writes."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import TypeAdapter
from redis.asyncio import Redis

from common import keys
from common.errors import KnowledgeError
from common.knowledge import (
    FILE_TABLE,
    FileEntry,
    KnowledgeConfig,
    KnowledgeMeta,
    StoredChunk,
    chunk_field,
    not_built,
)

_FILE_TABLE = TypeAdapter(dict[str, FileEntry])


async def read_meta(redis: Redis, name: str) -> KnowledgeMeta | None:
    """The base's current version, or None when it was never built."""
    raw = await redis.hgetall(keys.knowledge_meta(name))  # type: ignore[misc]  # redis-py types sync and async alike
    return KnowledgeMeta.from_hash(name, raw)


async def usable_meta(redis: Redis, name: str, config: KnowledgeConfig) -> KnowledgeMeta:
    """The base's current version, when it can answer for ``config``; ``KnowledgeError`` saying why not
    (never built, or built with another model or dimension)."""
    meta = await read_meta(redis, name)
    if meta is None:
        raise KnowledgeError(not_built(name))
    problem = meta.mismatch(config)
    if problem is not None:
        raise KnowledgeError(problem)
    return meta


async def built_bases(redis: Redis) -> list[KnowledgeMeta]:
    """Every built base, by name."""
    names = sorted(name.decode() for name in await redis.smembers(keys.KNOWLEDGE_BASES))  # type: ignore[misc]
    metas = [await read_meta(redis, name) for name in names]
    return [meta for meta in metas if meta is not None]


async def read_file_table(redis: Redis, meta: KnowledgeMeta) -> dict[str, FileEntry]:
    """The files of the base's current version; empty when that version is gone (replaced since)."""
    raw = await redis.hget(keys.knowledge_data(meta.name, meta.version), FILE_TABLE)  # type: ignore[misc]
    return _FILE_TABLE.validate_json(raw) if raw else {}


async def read_chunks(redis: Redis, meta: KnowledgeMeta, rows: Sequence[int]) -> list[StoredChunk | None]:
    """The chunks in ``rows`` of the base's version, in order, in one round trip; None for a row that
    is gone (its version replaced and expired since ``meta`` was read)."""
    if not rows:
        return []
    fields = [chunk_field(row) for row in rows]
    raw = await redis.hmget(keys.knowledge_data(meta.name, meta.version), fields)  # type: ignore[misc]
    return [StoredChunk.model_validate(json.loads(value)) if value else None for value in raw]
