"""The sources of a knowledge answer: which chunks filled its prompt, best first."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, TypeAdapter


class Source(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    file: str
    """The file's path relative to the root folder, as the build read it."""
    chunk: int
    """The chunk's position in its file, from 0."""
    score: float
    """Cosine similarity of the chunk to the question, from -1 to 1."""


SOURCES = TypeAdapter(list[Source])


def sources_json(sources: Sequence[Source]) -> str:
    """The stored form (a job record's ``sources``): a JSON array, scores to four places."""
    return json.dumps(
        [{"file": s.file, "chunk": s.chunk, "score": round(s.score, 4)} for s in sources],
        ensure_ascii=False,
    )


def parse_sources(raw: str) -> list[Source]:
    """What ``sources_json`` wrote; empty for a job without knowledge."""
    return SOURCES.validate_json(raw) if raw else []
