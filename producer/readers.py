"""Stream question files line by line: memory stays flat however large the file.

Each reader yields a ``QuestionItem`` per question or a ``LineProblem`` per bad line; problems with
the file as a whole (missing, binary, not UTF-8, unknown format, a quote never closed) raise
``InputError``. A file is named in messages by its ``name``: its path, or ``<stdin>`` for a spooled
standard input.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from producer.csv_reader import read_csv
from producer.items import MAX_DEPTH, ItemProblem, QuestionItem, item_from_object, shortened
from producer.lines import FORMATS, LineProblem, text_lines

SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".csv": "csv"}
# A lone surrogate can only come from a \uD800-\uDFFF escape: the line itself was strict UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"

Parsed = QuestionItem | LineProblem


@dataclass(frozen=True)
class Source:
    """A question file to read (both passes read it alike): its path, format and name in messages."""

    path: Path
    fmt: str
    name: str

    def items(self) -> Iterator[Parsed]:
        return READERS[self.fmt](self.path, self.name)


def open_source(path: Path, fmt: str | None = None, name: str | None = None) -> Source:
    """The file at ``path`` in ``fmt`` (default: from its extension); refused if unknown or missing."""
    name = name or str(path)
    if fmt is None:
        fmt = SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            known = ", ".join(sorted(SUFFIX_FORMATS))
            raise InputError(
                f"{name}: unknown file type {path.suffix or '(none)'!r}; askq reads {known} "
                f"(or say --format {'|'.join(FORMATS)})"
            )
    elif fmt not in READERS:
        raise InputError(f"unknown format {fmt!r}; askq reads {', '.join(FORMATS)}")
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    return Source(path, fmt, name)


def read_items(path: Path, fmt: str | None = None, name: str | None = None) -> Iterator[Parsed]:
    return open_source(path, fmt, name).items()


class _NotJson(ValueError):
    """A token Python's reader takes but JSON has not (NaN, Infinity), or a number beyond a double."""


def _refuse_constant(name: str) -> object:
    # A provider refuses the request they would make, and JSON writers disagree on them.
    raise _NotJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 reads as inf, which the job's JSON writer turns into null
        raise _NotJson(f"{text} is too large a number")
    return value


def read_jsonl(path: Path, name: str, *, batch_only: bool = False) -> Iterator[Parsed]:
    for number, text in text_lines(path, name):
        if not text.strip():
            continue
        try:
            obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
        except json.JSONDecodeError as exc:
            yield LineProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except _NotJson as exc:
            yield LineProblem(number, f"not valid JSON ({exc})")
            continue
        except ValueError:  # the only other: an integer beyond the interpreter's digit limit
            digits = sys.get_int_max_str_digits()
            yield LineProblem(number, f"not valid JSON (a number of more than {digits:,} digits)")
            continue
        except RecursionError:
            yield LineProblem(number, _TOO_DEEP)
            continue
        try:
            if "\\u" in text and _SURROGATE_ESCAPE.search(text):
                _refuse_lone_surrogates(obj, "")
            yield item_from_object(obj, number, batch_only=batch_only)
        except ItemProblem as exc:
            yield LineProblem(number, str(exc))
        except RecursionError:  # the surrogate search, on a line nested nearly as deep as json reads
            yield LineProblem(number, _TOO_DEEP)


def read_openai_batch(path: Path, name: str) -> Iterator[Parsed]:
    return read_jsonl(path, name, batch_only=True)


def _refuse_lone_surrogates(value: Any, where: str) -> None:
    """Refuse a string with a lone surrogate (which no UTF-8 writer can write), naming where it is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            raise ItemProblem(
                f"{where or 'a value'} holds a lone surrogate (\\u{code:04x}), which is not text"
            ) from None
    elif isinstance(value, dict):
        for key, inner in value.items():
            _refuse_lone_surrogates(key, where or "a key")
            _refuse_lone_surrogates(inner, f"{where}.{shortened(key)}" if where else shortened(key))
    elif isinstance(value, list):
        for inner in value:
            _refuse_lone_surrogates(inner, where)


def read_txt(path: Path, name: str) -> Iterator[Parsed]:
    for number, text in text_lines(path, name):
        question = text.rstrip("\r\n")
        if "\r" in question:
            # Old Mac line endings: the whole file would be one question.
            yield LineProblem(
                number, "a carriage return inside the line (CR line endings?); askq reads one question a line"
            )
        elif question.strip():
            yield QuestionItem(line=number, item_id=str(number), question=question.strip())


READERS: dict[str, Callable[[Path, str], Iterator[Parsed]]] = {
    "jsonl": read_jsonl,
    "openai-batch": read_openai_batch,
    "txt": read_txt,
    "csv": read_csv,
}
