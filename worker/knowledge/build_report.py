"""What a build says as it goes and when done, for ``askq knowledge build`` to show (light to import:
the CLI renders it without loading the provider's client)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from worker.knowledge.files import Skipped


class BuildProgress(Protocol):
    """What a build tells its caller as it goes (the CLI's progress bar)."""

    def planned(self, chunks: int) -> None:
        """``chunks`` are to be embedded."""

    def embedded(self, chunks: int) -> None:
        """``chunks`` more are embedded."""


class NoProgress:
    def planned(self, chunks: int) -> None:
        pass

    def embedded(self, chunks: int) -> None:
        pass


@dataclass(frozen=True)
class BuildReport:
    name: str
    version: int
    up_to_date: bool
    """Nothing had changed: no request sent, the current version kept."""
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
