"""The files of a knowledge base: what its glob matches under the root folder, checked at load.

A base's files are read by ``askq knowledge build`` and sent to the provider; like a schedule's glob
(``common.confine``), the glob stays inside the root folder, and a match whose real path is outside
it (a link out) is refused. Only Markdown and text files are read: anything else matched is refused
by name, so that a PDF is never embedded as bytes nor silently left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.confine import confined_matches
from common.knowledge import TEXT_SUFFIXES, KnowledgeConfig
from common.wording import first_few

SHOWN = 5


@dataclass(frozen=True)
class BaseFiles:
    files: list[str]
    """Paths relative to the root, sorted: each a regular file inside it with a text suffix."""
    outside: list[str]
    """Matches whose real path leaves the root (links out of it)."""
    other_kinds: list[str]
    """Matches that are files of another kind than ``TEXT_SUFFIXES``."""


def base_files(root: Path, pattern: str) -> BaseFiles:
    """What ``pattern`` matches under ``root`` (``common.confine.confined_matches``), by kind."""
    found, outside = confined_matches(root, pattern)
    files = [path for path, _ in found if path.lower().endswith(TEXT_SUFFIXES)]
    other_kinds = [path for path, _ in found if not path.lower().endswith(TEXT_SUFFIXES)]
    return BaseFiles(files, outside, other_kinds)


def check_knowledge_files(root: Path, bases: Mapping[str, KnowledgeConfig]) -> str | None:
    """Why a base's files cannot be read (its key named), or None when every base has some."""
    for name, base in bases.items():
        where = f"knowledge.{name}.files"
        folder = _fixed_folder(base.files)
        if not (root / folder).is_dir():
            return f"{where}: the folder {folder.as_posix()!r} does not exist under {root}"
        found = base_files(root, base.files)
        if found.outside:
            return f"{where}: {_listed(found.outside)} lead out of the root folder {root}"
        if found.other_kinds:
            kinds = ", ".join(TEXT_SUFFIXES)
            return f"{where}: {_listed(found.other_kinds)} are not text files ({kinds}); narrow the glob"
        if not found.files:
            return f"{where}: {base.files!r} matches no {', '.join(TEXT_SUFFIXES)} file under {root}"
    return None


def _fixed_folder(pattern: str) -> Path:
    """The part of the glob before its first wildcard, as a folder: ``docs/menu`` of ``docs/menu/**/*.md``."""
    parts = Path(pattern).parts
    fixed = _until_wildcard(parts)
    if len(fixed) == len(parts):
        fixed = fixed[:-1]  # a glob naming one file: its folder
    return Path(*fixed) if fixed else Path(".")


def _until_wildcard(parts: tuple[str, ...]) -> list[str]:
    fixed: list[str] = []
    for part in parts:
        if any(char in part for char in "*?[{!"):
            break
        fixed.append(part)
    return fixed


def _listed(paths: list[str]) -> str:
    return first_few([repr(path) for path in paths], shown=SHOWN)
