"""CSV question files: a header with a ``question`` column and optionally ``id``.

A quoted field may span lines, so a quote never closed swallows every row after it into one field.
The csv module says nothing about that (it returns what it has at the end of the input), so the
rows are fed with one last line of our own, which only this reader can write (it holds NUL bytes,
which ``text_lines`` refuses in a file): if that line comes back inside a field, a quote was open.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import InputError
from producer.items import ItemProblem, QuestionItem, check_id, check_question
from producer.lines import LineProblem, text_lines

if TYPE_CHECKING:
    from _csv import Reader

_END_CELL = "\x00end of file\x00"
_END_LINE = _END_CELL + "\n"


def read_csv(path: Path, name: str) -> Iterator[QuestionItem | LineProblem]:
    reader = csv.reader(_lines_and_end(path, name))
    try:
        header = _next_row(reader, name)
    except csv.Error as exc:
        raise InputError(f"{name}: line 1: unreadable CSV header ({_reason(exc)})") from None
    if header is None:
        return
    header = [cell.strip().lower() for cell in header]
    if "question" not in header:
        raise InputError(f"{name}: line 1: the header has no 'question' column (found: {', '.join(header)})")
    question_at = header.index("question")
    id_at = header.index("id") if "id" in header else None
    while True:
        try:
            row = _next_row(reader, name)
        except csv.Error as exc:  # a stray carriage return in an unquoted field: this line only
            yield LineProblem(reader.line_num, f"unreadable CSV ({_reason(exc)})")
            continue
        if row is None:
            return
        if any(cell.strip() for cell in row):
            yield _csv_item(row, reader.line_num, question_at, id_at, len(header))


def _lines_and_end(path: Path, name: str) -> Iterator[str]:
    for _, text in text_lines(path, name):
        # Only the last line can lack its newline; with one, the end line below stays a line of its own.
        yield text if text.endswith("\n") else text + "\n"
    yield _END_LINE


def _next_row(reader: Reader, name: str) -> list[str] | None:
    """The next row; None at the end of the file, which must not fall inside a quoted field."""
    start = reader.line_num + 1
    try:
        row = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        if "field limit" not in str(exc):
            raise
        # Past the limit the reader's place in the file is lost: a quote left open is the usual cause.
        raise InputError(
            f"{name}: line {start}: a field of this row runs past {csv.field_size_limit():,} characters: "
            "a quote opened on it is never closed, or a question is too long for CSV (use JSONL)"
        ) from None
    if row == [_END_CELL]:
        return None
    if row and row[-1].endswith(_END_LINE):
        # The open field holds every line from the one it opened on down to the end line.
        opened = reader.line_num + 1 - row[-1].count("\n")
        raise InputError(f"{name}: line {opened}: a quoted field opened here is never closed")
    return row


def _reason(exc: csv.Error) -> str:
    if "new-line character" in str(exc):  # the csv module's advice is for Python code, not for a user
        return "a carriage return inside an unquoted field: CR line endings?"
    return str(exc)


def _csv_item(
    row: list[str], line: int, question_at: int, id_at: int | None, width: int
) -> QuestionItem | LineProblem:
    if len(row) != width:
        return LineProblem(line, f"expected {width} columns as in the header, got {len(row)}")
    try:
        item_id = check_id(row[id_at]) if id_at is not None else str(line)
        return QuestionItem(line=line, item_id=item_id, question=check_question(row[question_at]).strip())
    except ItemProblem as exc:
        return LineProblem(line, str(exc))
