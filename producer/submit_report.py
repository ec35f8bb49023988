"""What a submit says: its report, its progress hook, its refusals of a file, and batch names.

Apart from ``producer.submit`` (which checks and enqueues) so that the CLI and the server import the
words without the machinery."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from common.errors import InputError, RedisUnavailableError
from producer.validation import FileCheck

SKIP_INVALID_HINT = "--skip-invalid enqueues the good lines"
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class InvalidLinesError(InputError):
    """The file has bad lines (or no good one): nothing was enqueued. ``problems``: one line each, as
    the message lists them, for a caller that shows them apart (the API's 422); ``check``: the file's
    check, each problem with its line (the Batch API's ``errors.data``)."""

    def __init__(self, problems: list[str], advice: str, check: FileCheck) -> None:
        super().__init__("\n".join([*problems, advice]))
        self.problems = problems
        self.advice = advice
        self.check = check


class RedisFullError(RedisUnavailableError):
    """Redis reached its maxmemory mid-submit: what was written stays, and a resubmit adds the rest."""


@dataclass(frozen=True)
class SubmitReport:
    batch: str
    items: int
    enqueued: int
    skipped_existing: int
    """Items already in the batch with the same question and request: nothing to do."""
    invalid_lines: int
    problems: str = ""
    conflicting: int = 0
    """Items already in the batch with another question or request: left as they were, not asked."""
    conflicting_ids: list[str] = field(default_factory=list)
    """The first 20 of them (``producer.submit.MAX_NAMED_CONFLICTS``)."""

    def to_json(self) -> dict[str, object]:
        """What ``askq submit --json`` prints and ``POST /api/batches`` answers: one shape for both."""
        return {**self.__dict__, "problems": self.problems.splitlines()}


class SubmitProgress(Protocol):
    """Hears how far a long submit has come: a few calls per second at most, never one per line."""

    def checked(self, items: int) -> None: ...

    def written(self, items: int, total: int) -> None: ...


def default_batch_name(path: Path, digest: str) -> str:
    """The file's stem and content hash: the same file resubmitted lands in the same batch."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "batch"
    return f"{stem[:60]}-{digest[:8]}"


def check_batch_name(name: str) -> str:
    if not BATCH_NAME.match(name):
        raise InputError(
            f"batch name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return name
