"""Reading a base's files for a build: their bytes' digest and their text, or why one is left out.

A file that cannot be read or is not UTF-8 is listed with the reason and skipped, not fatal: one
stray file should not keep a base of hundreds from being built. Each match is opened at its
resolved path without following a link, as a schedule's files are (``worker.schedules.sources``):
a link swapped in after the check that it stays inside the root is refused by the kernel.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from common.confine import inside
from common.knowledge import TEXT_SUFFIXES
from common.knowledge_files import base_files


@dataclass(frozen=True)
class BaseFile:
    path: str
    """Relative to the root, as the chunks and `askq knowledge search` name it."""
    sha256: str
    """Of the file's bytes: a rebuild re-embeds the file only when it changes."""
    text: str


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class ReadFiles:
    files: list[BaseFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def read_base_files(root: Path, pattern: str) -> ReadFiles:
    """Every file ``pattern`` matches under ``root``, in path order, read or skipped with a reason."""
    found = base_files(root, pattern)
    read = ReadFiles()
    read.skipped.extend(Skipped(path, "leads out of the root folder") for path in found.outside)
    kinds = ", ".join(TEXT_SUFFIXES)
    read.skipped.extend(Skipped(path, f"not a text file ({kinds})") for path in found.other_kinds)
    for path in found.files:
        outcome = read_one(root, path)
        if isinstance(outcome, BaseFile):
            read.files.append(outcome)
        else:
            read.skipped.append(outcome)
    read.skipped.sort(key=lambda skipped: skipped.path)
    return read


def read_one(root: Path, path: str) -> BaseFile | Skipped:
    """One file's digest and text (a UTF-8 byte order mark left out), or why it cannot be used."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        # Its name is stored (as JSON) and shown with every source: it must be text. Shown escaped.
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return Skipped(shown, "its name is not UTF-8; rename it")
    real = inside(root, path)
    if real is None:  # a link swapped in since the listing
        return Skipped(path, "leads out of the root folder")
    try:
        descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        return Skipped(path, f"cannot be read: {exc.strerror or exc}")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Skipped(path, f"not UTF-8 (byte 0x{content[exc.start]:02x} at offset {exc.start})")
    return BaseFile(path, hashlib.sha256(content).hexdigest(), text)
