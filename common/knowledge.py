"""Knowledge bases: the ``knowledge:`` section of jobs.yaml, and how a built base is laid out in Redis.

A base is a set of Markdown or text files, split into chunks and embedded through the provider's
``/v1/embeddings`` by ``askq knowledge build``. The build writes one Redis hash per version
(``keys.knowledge_data``): the L2-normalised float32 matrix, in segments of whole rows, and each
chunk's text, file and position, one field a chunk, so a worker holds only the matrix in memory and
reads the few chunks a question needs. ``keys.knowledge_meta`` names the current version: a worker
reloads the matrix only when it changes, and a rebuild switches every worker at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.confine import check_relative
from common.errors import NotFoundError
from common.strict import Strict

KNOWLEDGE_PLACEHOLDER = "{knowledge}"
"""Where a job type's system prompt takes the retrieved chunks."""
TEXT_SUFFIXES = (".md", ".markdown", ".txt")
"""The files a base reads: what a splitter on sentences and paragraphs can split faithfully."""
BASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_TOP_K = 4
MAX_TOP_K = 50


class KnowledgeConfig(Strict):
    files: str = Field(min_length=1)
    """A glob relative to the root folder (``files_root``); ``**`` descends into folders."""
    chunk_tokens: int = Field(default=300, ge=16, le=8191)
    """Most tokens in one chunk (the embedding model's tokenizer), split on sentences and paragraphs."""
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    """Tokens a chunk may repeat from the end of the one before, so a fact cut by a boundary is whole
    in one of them."""
    embedding_model: str = Field(default="text-embedding-3-small", min_length=1)
    dimensions: int | None = Field(default=None, ge=1, le=16_384)
    """Sent to the embeddings API when set (text-embedding-3 models shorten their vectors to it)."""

    _inside_root = field_validator("files")(classmethod(lambda cls, value: check_relative(value)))

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> KnowledgeConfig:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        return self


def check_base_name(name: str) -> None:
    if not BASE_NAME.match(name):
        raise ValueError(
            f"knowledge.{name}: a base's name is 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )


# The meta hash (keys.knowledge_meta): what `askq knowledge list` shows and workers check.
VERSION = "version"
MODEL = "model"
DIMENSIONS = "dimensions"
CHUNKS = "chunks"
FILES = "files"
MATRIX_BYTES = "matrix_bytes"
BUILT_AT = "built_at"
CHUNK_TOKENS = "chunk_tokens"
CHUNK_OVERLAP_TOKENS = "chunk_overlap_tokens"
ROWS_PER_SEGMENT = "rows_per_segment"
SEGMENTS = "segments"

# The data hash of one version (keys.knowledge_data).
FILE_TABLE = "files"
"""JSON object: file path -> {"sha256": digest, "first": first row, "rows": chunk count}."""
SEGMENT_BYTES = 1024 * 1024
"""About this many bytes of matrix a field: a worker's load never asks Redis for one huge reply. Each
reply passes through hiredis's buffer (grown a megabyte at a time) and a bytes object before its
copy into the matrix, and glibc keeps the freed space: at 8 MB a field, loading a 200 MB matrix
peaked at 1.12-1.16x its bytes and kept 1.02-1.08x; at 1 MB, 1.02-1.03x and 1.005-1.02x, and the
load was faster (0.13 against 0.19 s; ``python -m bench --sections knowledge``). Meta records the
rows a field, so a base written with another size loads all the same."""


def matrix_field(segment: int) -> str:
    """Rows ``segment * rows_per_segment`` onwards, as little-endian float32 bytes."""
    return f"m:{segment}"


def chunk_field(row: int) -> str:
    """JSON ``{"text", "file", "position"}`` of the chunk in row ``row`` (position: its index in its file)."""
    return f"c:{row}"


def rows_per_segment(dimensions: int) -> int:
    return max(1, SEGMENT_BYTES // (4 * dimensions))


class KnowledgeMeta(BaseModel):
    """A built base, as its meta hash says."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    model: str
    dimensions: int
    chunks: int
    files: int
    matrix_bytes: int
    built_at: float
    chunk_tokens: int
    chunk_overlap_tokens: int
    rows_per_segment: int
    segments: int
    chunk_bytes: int = 0
    """Bytes of the chunks as stored (their JSON): with ``matrix_bytes``, what the version takes."""
    requested_dimensions: int = 0
    """The ``dimensions`` the build sent (0: none, the model's own width). A question must be embedded
    the same way: an index shortened to 256 cannot answer for a config that no longer asks for 256."""

    @classmethod
    def draft(cls, name: str, base: KnowledgeConfig, dimensions: int) -> KnowledgeMeta:
        """A new version's meta before it is written: ``write_version`` sets its number, counts, sizes."""
        return cls(
            name=name, version=0, model=base.embedding_model, dimensions=dimensions, chunks=0, files=0,
            matrix_bytes=0, built_at=0, chunk_tokens=base.chunk_tokens,
            chunk_overlap_tokens=base.chunk_overlap_tokens, rows_per_segment=0, segments=0,
            requested_dimensions=base.dimensions or 0,
        )  # fmt: skip

    @classmethod
    def from_hash(cls, name: str, raw: dict[bytes, bytes]) -> KnowledgeMeta | None:
        """None for a base never built (an empty hash)."""
        if not raw:
            return None
        fields: dict[str, Any] = {key.decode(): value.decode() for key, value in raw.items()}
        return cls.model_validate({**fields, "name": name})

    def to_hash(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.model_dump(exclude={"name"}).items()}

    def mismatch(self, config: KnowledgeConfig) -> str | None:
        """Why this index cannot answer for ``config`` (another model or dimension), or None."""
        if config.dimensions is not None:
            same_width = self.dimensions == config.dimensions  # asked for, or the model's own
        else:
            same_width = not self.requested_dimensions
        if self.model == config.embedding_model and same_width:
            return None
        width = f"{config.dimensions} dimensions" if config.dimensions else "the model's own dimensions"
        wanted = f"{config.embedding_model} at {width}"
        return (
            f"knowledge base {self.name!r} was built with {self.model} at {self.dimensions} dimensions, "
            f"but jobs.yaml asks for {wanted}: run `askq knowledge build {self.name}` (or, if the base "
            "was rebuilt for a newer jobs.yaml, restart the workers still running the old one)"
        )


def known_base(bases: Mapping[str, KnowledgeConfig], name: str) -> KnowledgeConfig:
    """The base of jobs.yaml named ``name``; a NotFoundError naming the ones it has."""
    base = bases.get(name)
    if base is None:
        known = ", ".join(sorted(bases)) or "none: jobs.yaml has no knowledge: section"
        raise NotFoundError(f"unknown knowledge base {name!r} (jobs.yaml's knowledge bases: {known})")
    return base


def not_built(name: str) -> str:
    return f"knowledge base {name!r} is not built: run `askq knowledge build {name}`"


def fill_knowledge(system_prompt: str, knowledge: str) -> str:
    """The prompt with its ``{knowledge}`` replaced: not ``str.format``, which other braces would break."""
    return system_prompt.replace(KNOWLEDGE_PLACEHOLDER, knowledge)


class StoredChunk(BaseModel):
    """One chunk as the build stores it (``chunk_field``)."""

    model_config = ConfigDict(frozen=True)

    text: str
    file: str
    position: int
    """Its index among its file's chunks, from 0."""


class FileEntry(BaseModel):
    """One file of a version (``FILE_TABLE``): its digest, and the rows its chunks hold."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    first: int
    rows: int
