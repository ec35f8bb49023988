"""Stream question files line by line: memory stays flat however large the file.

Each reader yields a ``QuestionItem`` per question or a ``LineProblem`` per bad line; problems with
the file as a whole (missing, binary, not UTF-8, unknown format) raise ``InputError``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.errors import InputError
from producer.items import ItemProblem, QuestionItem, check_id, check_question, item_from_object


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str


Parsed = QuestionItem | LineProblem


def read_items(path: Path) -> Iterator[Parsed]:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise InputError(f"{path}: unknown file type {path.suffix or '(none)'!r}; askq reads {known}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return reader(path)


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) pairs, decoded one line at a time so a bad byte is pinned to its line."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if b"\x00" in raw:
                    raise InputError(f"{path}: line {number}: binary data (NUL byte); expected UTF-8 text")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{path}: line {number}: not UTF-8 text (byte {exc.start + 1} of the line)"
                    ) from None
                if number == 1:
                    text = text.removeprefix("\ufeff")
                yield number, text
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


class _NotJson(ValueError):
    """A token Python's reader takes but JSON has not (NaN, Infinity)."""


def _refuse_constant(name: str) -> object:
    # A provider refuses the request they would make, and JSON writers disagree on them.
    raise _NotJson(name)


def read_jsonl(path: Path) -> Iterator[Parsed]:
    for number, text in _text_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            yield LineProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except _NotJson as exc:
            yield LineProblem(number, f"not valid JSON ({exc} is not a JSON number)")
            continue
        try:
            yield item_from_object(obj, number)
        except ItemProblem as exc:
            yield LineProblem(number, str(exc))


def read_txt(path: Path) -> Iterator[Parsed]:
    for number, text in _text_lines(path):
        question = text.rstrip("\r\n")
        if question.strip():
            yield QuestionItem(line=number, item_id=str(number), question=question.strip())


def read_csv(path: Path) -> Iterator[Parsed]:
    lines = (text for _, text in _text_lines(path))
    reader = csv.reader(lines)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{path}: line 1: unreadable CSV header ({exc})") from None
    if "question" not in header:
        raise InputError(f"{path}: line 1: the header has no 'question' column (found: {', '.join(header)})")
    question_at = header.index("question")
    id_at = header.index("id") if "id" in header else None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield _csv_item(row, reader.line_num, question_at, id_at, len(header))
    except csv.Error as exc:
        yield LineProblem(reader.line_num, f"unreadable CSV ({exc})")


def _csv_item(row: list[str], line: int, question_at: int, id_at: int | None, width: int) -> Parsed:
    if len(row) != width:
        return LineProblem(line, f"expected {width} columns as in the header, got {len(row)}")
    try:
        item_id = check_id(row[id_at]) if id_at is not None else str(line)
        return QuestionItem(line=line, item_id=item_id, question=check_question(row[question_at]).strip())
    except ItemProblem as exc:
        return LineProblem(line, str(exc))


READERS: dict[str, Callable[[Path], Iterator[Parsed]]] = {
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".txt": read_txt,
    ".csv": read_csv,
}
