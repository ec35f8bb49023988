"""What a build did, for ``askq knowledge build`` to print (and ``--json`` to give whole)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from worker.knowledge.files import Skipped


@dataclass(frozen=True)
class BuildReport:
    name: str
    version: int
    model: str
    dimensions: int
    files_read: int
    """Files read as UTF-8 text, whether embedded or kept."""
    files_embedded: list[str]
    """Changed or new: chunked and embedded by this build."""
    files_unchanged: int
    """Their rows copied from the version before."""
    files_removed: list[str]
    """In the version before, gone from the files now."""
    skipped: list[Skipped]
    """Unreadable, not UTF-8, or without text: left out, with the reason."""
    chunks: int
    chunks_embedded: int
    requests: int
    """Embeddings requests sent, retries included."""
    seconds: float

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["seconds"] = round(self.seconds, 3)
        return document
