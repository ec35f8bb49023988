"""A question file's formats, its text one numbered line at a time, and the problem of one bad line.

Light on purpose: the command line imports ``FORMATS`` for its --format choices at every start."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.errors import InputError

FORMATS = ("jsonl", "txt", "csv", "openai-batch")
"""``openai-batch`` is JSONL of OpenAI Batch API request lines only; ``jsonl`` takes those and plain lines."""


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str


def text_lines(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) pairs, decoded one line at a time so a bad byte is pinned to its line."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if b"\x00" in raw:
                    raise InputError(f"{name}: line {number}: binary data (NUL byte); expected UTF-8 text")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{name}: line {number}: not UTF-8 text (byte {exc.start + 1} of the line)"
                    ) from None
                if number == 1:
                    text = text.removeprefix("\ufeff")
                yield number, text
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
