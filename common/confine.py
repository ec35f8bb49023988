"""Paths from jobs.yaml stay inside one root folder: the folder of jobs.yaml unless ``files_root`` says.

A schedule reads files (``source.glob``) and writes summaries (``output``) on the worker's machine.
Both are written by whoever edits jobs.yaml, and what a schedule reads is sent to the provider, so a
glob like ``/etc/*`` or ``../../secrets/*`` must not be honoured: relative paths only, checked at
load, and every file found is resolved again at run time, so that a symbolic link pointing out of
the root is skipped (and reported) rather than followed.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path, PurePosixPath


class OutsideRootError(ValueError):
    """A path that would leave the root folder."""


def check_relative(value: str) -> str:
    """``value`` if it names a place inside the root; a ValueError saying why not otherwise."""
    if value.startswith(("/", "\\", "~")) or PurePosixPath(value).is_absolute() or value[1:2] == ":":
        raise ValueError(f"{value!r} must be relative to the root folder (absolute paths are refused)")
    normal = posixpath.normpath(value.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{value!r} leaves the root folder ('..' past it is refused)")
    return value


def inside(root: Path, path: str | Path) -> Path | None:
    """The real path of ``root / path`` if it lies inside the real root (links resolved), else None."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / path))
    return real if real == real_root or real.is_relative_to(real_root) else None


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
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            current.mkdir(mode=0o700)
            continue
        if stat.S_ISLNK(mode):
            raise OutsideRootError(f"{current}: is a symbolic link; summaries are never written through one")
        if not stat.S_ISDIR(mode):
            raise OutsideRootError(f"{current}: is not a folder")
    return current
