"""``askq knowledge build``: a base's files read, chunked, embedded and written as its next version.

A rebuild embeds only what changed: when the model, the dimensions asked for and the chunking are
those of the current version, a file whose bytes have the same sha256 keeps its rows of the matrix
and its chunks' texts, copied from that version; only changed and new files are chunked and sent.
Anything else (another model, width or chunk budget) re-embeds every file, since old rows would
not be comparable with new questions. Nothing is half-done: the new version becomes current in one
transaction at the end, so a build that fails leaves the current one as it was.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.errors import KnowledgeError
from common.knowledge import FileEntry, KnowledgeConfig, KnowledgeMeta, StoredChunk, known_base
from common.knowledge_store import read_chunks, read_file_table, read_meta
from common.wording import first_few
from worker.knowledge.build_lock import BuildLock
from worker.knowledge.build_report import BuildProgress, BuildReport, NoProgress
from worker.knowledge.chunking import chunk_text
from worker.knowledge.embed_many import base_embedder, embed_many, gate_batch
from worker.knowledge.files import BaseFile, ReadFiles, Skipped, read_base_files
from worker.knowledge.index import Matrix
from worker.knowledge.index_store import CHUNKS_PER_WRITE, load_index, write_version

NO_TEXT = "has no text"


@dataclass
class _Plan:
    """The new version's files in path order: each either kept from the current version or chunked."""

    kept: dict[str, FileEntry] = field(default_factory=dict)
    chunked: dict[str, list[str]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return sorted(self.digests)


async def build_base(
    redis: Redis, config: AskqConfig, name: str, progress: BuildProgress | None = None
) -> BuildReport:
    """Build ``name`` of ``config.knowledge`` and make it current; what was done."""
    base = known_base(config.knowledge, name)
    progress = progress or NoProgress()
    started = time.monotonic()
    async with BuildLock(redis, name) as lock:
        # A new build is the retry of one the provider refused with a 401: its halt goes.
        await redis.delete(keys.batch_halt(gate_batch(name)))
        read = await asyncio.to_thread(read_base_files, config.root, base.files)
        previous = await read_meta(redis, name)
        old_table = await read_file_table(redis, previous) if previous is not None else {}
        reusable = old_table if previous is not None and _same_build(previous, base) else {}
        plan = await asyncio.to_thread(_plan, read, reusable, base)
        if not plan.digests:
            raise KnowledgeError(_no_text(name, read, plan))
        if previous is not None and not plan.chunked and plan.kept.keys() == old_table.keys():
            # Nothing to send or write: a new version would only make every worker reload the same.
            return _report(read, plan, old_table, previous, requests=0, started=started, up_to_date=True)
        kept_rows, kept_chunks = await _kept(redis, previous, plan)
        texts = [text for path in plan.paths for text in plan.chunked.get(path, [])]
        progress.planned(len(texts))
        async with base_embedder(
            redis, config, name, model=base.embedding_model, dimensions=base.dimensions
        ) as embedder:
            width = previous.dimensions if kept_rows is not None and previous else base.dimensions
            embedded = await embed_many(embedder, texts, width, progress.embedded)
            requests = embedder.requests
        matrix, chunks, table = _assembled(plan, kept_rows, kept_chunks, embedded)
        lock.check()
        draft = _draft(name, base, matrix.shape[1])
        meta = await write_version(redis, draft, matrix, chunks, table, lock_token=lock.token)
    return _report(read, plan, old_table, meta, requests=requests, started=started, up_to_date=False)


def _report(
    read: ReadFiles,
    plan: _Plan,
    old_table: dict[str, FileEntry],
    meta: KnowledgeMeta,
    *,
    requests: int,
    started: float,
    up_to_date: bool,
) -> BuildReport:
    return BuildReport(
        name=meta.name,
        version=meta.version,
        up_to_date=up_to_date,
        model=meta.model,
        dimensions=meta.dimensions,
        files_read=len(read.files),
        files_embedded=sorted(plan.chunked),
        files_unchanged=len(plan.kept),
        files_removed=sorted(set(old_table) - set(plan.digests)),
        skipped=sorted(read.skipped + plan.skipped, key=lambda skipped: skipped.path),
        chunks=meta.chunks,
        chunks_embedded=sum(map(len, plan.chunked.values())),
        requests=requests,
        seconds=time.monotonic() - started,
    )


def _same_build(previous: KnowledgeMeta, base: KnowledgeConfig) -> bool:
    """Whether the current version's rows are what this build would embed for an unchanged file."""
    return (
        previous.model == base.embedding_model
        and previous.requested_dimensions == (base.dimensions or 0)
        and previous.chunk_tokens == base.chunk_tokens
        and previous.chunk_overlap_tokens == base.chunk_overlap_tokens
    )


def _plan(read: ReadFiles, reusable: dict[str, FileEntry], base: KnowledgeConfig) -> _Plan:
    """Which files keep their rows and which are chunked anew (CPU work: run in a thread)."""
    plan = _Plan()
    for file in read.files:
        old = reusable.get(file.path)
        if old is not None and old.sha256 == file.sha256 and old.rows > 0:
            plan.kept[file.path] = old
        else:
            chunks = _chunks(file, base)
            if not chunks:
                plan.skipped.append(Skipped(file.path, NO_TEXT))
                continue
            plan.chunked[file.path] = chunks
        plan.digests[file.path] = file.sha256
    return plan


def _chunks(file: BaseFile, base: KnowledgeConfig) -> list[str]:
    return chunk_text(
        file.path,
        file.text,
        model=base.embedding_model,
        tokens=base.chunk_tokens,
        overlap=base.chunk_overlap_tokens,
    )


async def _kept(
    redis: Redis, previous: KnowledgeMeta | None, plan: _Plan
) -> tuple[Matrix | None, dict[int, StoredChunk]]:
    """The current version's matrix and the chunks of the files kept (None, {} when none is kept)."""
    if previous is None or not plan.kept:
        return None, {}
    index = await load_index(redis, previous.name)
    if index.meta.version != previous.version:  # cannot be while this build holds the lock
        raise KnowledgeError(f"knowledge base {previous.name!r} changed during its build; run it again")
    rows = [row for entry in plan.kept.values() for row in range(entry.first, entry.first + entry.rows)]
    chunks: dict[int, StoredChunk] = {}
    for first in range(0, len(rows), CHUNKS_PER_WRITE):
        page = rows[first : first + CHUNKS_PER_WRITE]
        for row, chunk in zip(page, await read_chunks(redis, previous, page), strict=True):
            if chunk is None:
                raise KnowledgeError(
                    f"knowledge base {previous.name!r}: chunk {row} of the current version is missing; "
                    "run the build again"
                )
            chunks[row] = chunk
    return index.matrix, chunks


def _assembled(
    plan: _Plan, kept_rows: Matrix | None, kept_chunks: dict[int, StoredChunk], embedded: Matrix
) -> tuple[Matrix, list[StoredChunk], dict[str, FileEntry]]:
    """The new version's matrix, chunks and file table, the files in path order."""
    width = embedded.shape[1] if embedded.shape[0] else kept_rows.shape[1]  # type: ignore[union-attr]
    total = sum(len(plan.chunked.get(path, [])) or plan.kept[path].rows for path in plan.paths)
    matrix = np.empty((total, width), dtype=np.float32)
    chunks: list[StoredChunk] = []
    table: dict[str, FileEntry] = {}
    next_embedded = 0
    for path in plan.paths:
        first = len(chunks)
        if path in plan.chunked:
            texts = plan.chunked[path]
            matrix[first : first + len(texts)] = embedded[next_embedded : next_embedded + len(texts)]
            next_embedded += len(texts)
            chunks.extend(StoredChunk(text=text, file=path, position=i) for i, text in enumerate(texts))
        else:
            old = plan.kept[path]
            assert kept_rows is not None
            matrix[first : first + old.rows] = kept_rows[old.first : old.first + old.rows]
            chunks.extend(kept_chunks[row] for row in range(old.first, old.first + old.rows))
        table[path] = FileEntry(sha256=plan.digests[path], first=first, rows=len(chunks) - first)
    return matrix, chunks, table


def _draft(name: str, base: KnowledgeConfig, dimensions: int) -> KnowledgeMeta:
    """The new version's meta; ``write_version`` sets its number, counts and sizes."""
    return KnowledgeMeta.draft(name, base, dimensions)


def _no_text(name: str, read: ReadFiles, plan: _Plan) -> str:
    skipped = sorted(read.skipped + plan.skipped, key=lambda skipped: skipped.path)
    listed = first_few([f"{item.path}: {item.reason}" for item in skipped], sep="; ", more="; and {n} more")
    return f"knowledge base {name!r} has no text to embed ({listed})"
