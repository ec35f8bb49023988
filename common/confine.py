"""Paths from jobs.yaml stay inside one root folder: the folder of jobs.yaml unless ``files_root`` says.

A schedule reads files (``source.glob``) and writes summaries (``output``) on the worker's machine.
Both are written by whoever edits jobs.yaml, and what a schedule reads is sent to the provider, so a
glob like ``/etc/*`` or ``../../secrets/*`` must not be honoured: relative paths only, checked at
load, and every file found is resolved again at run time, so that a symbolic link pointing out of
the root is skipped (and reported) rather than followed.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from pathlib import Path, PurePosixPath

from wcmatch import glob as wcglob

_DRIVE = re.compile(r"^[A-Za-z]:[/\\]")


class OutsideRootError(ValueError):
    """A path that would leave the root folder."""


def check_relative(value: str) -> str:
    """``value`` if it names a place inside the root; a ValueError saying why not otherwise.

    Any ``..`` is refused, not only one that normalises past the root: a glob's ``**`` may match no
    folder at all, so ``**/../x`` reaches past the root while its normal form ``x`` does not.
    """
    if value.startswith(("/", "\\", "~")) or _DRIVE.match(value):
        raise ValueError(f"{value!r} must be relative to the root folder (absolute paths are refused)")
    if ".." in re.split(r"[/\\]", value):
        raise ValueError(f"{value!r} leaves the root folder ('..' is refused)")
    return value


def inside(root: Path, path: str | Path) -> Path | None:
    """The real path of ``root / path`` if it lies inside the real root (links resolved), else None."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / path))
    return real if real == real_root or real.is_relative_to(real_root) else None


def confined_matches(root: Path, pattern: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """(path relative to ``root``, real path) of each file the glob matches, in path order, and the
    matches whose real path is outside ``root`` (links out of it).

    wcmatch's ``**`` does not descend into linked folders, where the standard library's does: a link
    to a parent made every file appear once per level, and two such links a walk without end. A
    file reached under two names is listed once, under its own name rather than a link's.
    """
    found: list[tuple[str, Path]] = []
    outside: list[str] = []
    seen: set[Path] = set()
    matches = wcglob.glob(pattern, root_dir=root, flags=wcglob.GLOBSTAR)
    for path in sorted(matches, key=lambda match: (os.path.islink(root / match), match)):
        real = inside(root, path)
        if real is None:
            outside.append(path)
        elif real.is_file() and real not in seen:
            seen.add(real)
            found.append((path, real))
    return sorted(found), sorted(outside)


def confined_folder(root: Path, relative: Path) -> Path:
    """``root / relative``, made if missing, one folder at a time, refusing any symbolic link on the way.

    A linked folder would send the summary wherever the link points; refusing links is simpler and
    safer than resolving them and checking where they land.
    """
    current = Path(os.path.realpath(root))
    for part in PurePosixPath(posixpath.normpath(relative.as_posix())).parts:
        if part in ("", "."):
            continue
        if part == "..":
            raise OutsideRootError(f"{relative}: leaves the root folder {root}")
        current = current / part
        # Made first, then looked at: two runs making the same folder at once both go on.
        with contextlib.suppress(FileExistsError):
            current.mkdir(mode=0o700)
        mode = current.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise OutsideRootError(f"{current}: is a symbolic link; summaries are never written through one")
        if not stat.S_ISDIR(mode):
            raise OutsideRootError(f"{current}: is not a folder")
    return current
