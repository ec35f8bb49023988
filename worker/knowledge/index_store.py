"""Writing a version of a knowledge base to Redis, and loading its matrix into a worker's memory.

A build writes the new version's hash whole before one transaction makes it current (meta, set of
bases) and gives the version it replaces ``REPLACED_TTL_S`` to live: a worker loading that one
meanwhile still finds it, and a worker that read the old meta reads the old chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis

from common import keys
from common.errors import KnowledgeError
from common.knowledge import (
    FILE_TABLE,
    FileEntry,
    KnowledgeMeta,
    StoredChunk,
    chunk_field,
    matrix_field,
    not_built,
    rows_per_segment,
)
from common.knowledge_store import read_meta
from worker.knowledge.index import KnowledgeIndex, Matrix

# KEYS: the build lock, the base's meta, the set of bases, the new version's data, the version it
# replaces (the new one's again when there is none). ARGV: the lock holder's token ('' when no lock
# is held: tests), the base's name, ms the replaced version stays readable, the meta's fields and
# values. The switch, in one call: made only while the lock is this build's, so a build whose lock
# lapsed (Redis or the process stalled) never replaces the version of the build that took it over.
_SWITCH = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PERSIST', KEYS[4])
if KEYS[5] ~= KEYS[4] then redis.call('PEXPIRE', KEYS[5], ARGV[3]) end
return 1
"""
REPLACED_TTL_S = 600
"""How long a replaced version stays readable: longer than any load of one."""
UNFINISHED_TTL_S = 3600
"""How long a version being written lives unless it becomes current: longer than any write of one."""
CHUNKS_PER_WRITE = 2000
LOAD_TRIES = 3


async def write_version(
    redis: Redis,
    draft: KnowledgeMeta,
    matrix: Matrix,
    chunks: Sequence[StoredChunk],
    files: dict[str, FileEntry],
    *,
    lock_token: str | None = None,
) -> KnowledgeMeta:
    """Store ``matrix`` (unit rows, one per chunk) and make it the base's current version; ``draft``'s
    version, segments and sizes are set here. Returns the meta now current. With ``lock_token``, the
    version becomes current only if the build lock is still that build's (checked in the switch)."""
    if matrix.shape[0] != len(chunks):
        raise ValueError(f"{matrix.shape[0]} rows for {len(chunks)} chunks")
    previous = await read_meta(redis, draft.name)
    version = await redis.incr(keys.knowledge_versions(draft.name))
    per_segment = rows_per_segment(draft.dimensions)
    segments = -(-len(chunks) // per_segment)
    meta = draft.model_copy(
        update={
            "version": int(version),
            "chunks": len(chunks),
            "files": len(files),
            "matrix_bytes": int(matrix.nbytes),
            "rows_per_segment": per_segment,
            "segments": segments,
            "built_at": time.time(),
        }
    )
    data = keys.knowledge_data(meta.name, meta.version)
    # Written with an expiry, made lasting when it becomes current: a build that dies while writing
    # leaves no version behind for good.
    await redis.delete(data)
    await redis.hset(data, FILE_TABLE, "{}")  # type: ignore[misc]
    await redis.expire(data, UNFINISHED_TTL_S)
    little_endian = matrix.astype("<f4", copy=False)
    for segment in range(segments):
        rows = little_endian[segment * per_segment : (segment + 1) * per_segment]
        await redis.hset(data, mapping={matrix_field(segment): rows.tobytes()})  # type: ignore[misc]
    chunk_bytes = 0
    for first in range(0, len(chunks), CHUNKS_PER_WRITE):
        page = chunks[first : first + CHUNKS_PER_WRITE]
        mapping = {chunk_field(first + i): chunk.model_dump_json().encode() for i, chunk in enumerate(page)}
        chunk_bytes += sum(map(len, mapping.values()))
        await redis.hset(data, mapping=mapping)  # type: ignore[misc]
    meta = meta.model_copy(update={"chunk_bytes": chunk_bytes})
    table = json.dumps({path: entry.model_dump() for path, entry in files.items()}, ensure_ascii=False)
    await redis.hset(data, FILE_TABLE, table)  # type: ignore[misc]
    replaced = keys.knowledge_data(meta.name, previous.version) if previous is not None else data
    fields = [item for pair in meta.to_hash().items() for item in pair]
    switched = await redis.register_script(_SWITCH)(
        keys=[
            keys.knowledge_build_lock(meta.name),
            keys.knowledge_meta(meta.name),
            keys.KNOWLEDGE_BASES,
            data,
            replaced,
        ],
        args=[lock_token or "", meta.name, REPLACED_TTL_S * 1000, *fields],
    )
    if not switched:
        raise KnowledgeError(
            f"the build of knowledge base {meta.name!r} lost its lock while writing (another build holds "
            "it now); its version was not made current: run it again once that build ended"
        )
    return meta


async def load_index(redis: Redis, name: str) -> KnowledgeIndex:
    """The base's current matrix, read a segment at a time into one array (no second copy held)."""
    for _ in range(LOAD_TRIES):
        meta = await read_meta(redis, name)
        if meta is None:
            raise KnowledgeError(not_built(name))
        matrix = await _read_matrix(redis, meta)
        if matrix is not None:
            return KnowledgeIndex(meta, matrix)
    # Each try found its version replaced and gone mid-load: builds faster than a load.
    raise KnowledgeError(f"knowledge base {name!r} changed during each of {LOAD_TRIES} loads; try again")


async def _read_matrix(redis: Redis, meta: KnowledgeMeta) -> Matrix | None:
    """None when a segment is missing: the version was replaced and expired meanwhile."""
    matrix = np.empty((meta.chunks, meta.dimensions), dtype=np.float32)
    data = keys.knowledge_data(meta.name, meta.version)
    for segment in range(meta.segments):
        raw = await redis.hget(data, matrix_field(segment))  # type: ignore[misc]
        if raw is None:
            return None
        rows = np.frombuffer(raw, dtype="<f4").reshape(-1, meta.dimensions)
        first = segment * meta.rows_per_segment
        matrix[first : first + rows.shape[0]] = rows
    return matrix
