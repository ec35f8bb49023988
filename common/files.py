"""Files askq writes for a user (results, summaries): whole or not at all, private, never through a link.

A reader sees the old file or the complete new one: the text goes to a temporary file in the same
folder, renamed into place once written. The file is created 0600 (answers are private), and a
target that is a symbolic link or a folder is refused rather than followed or clobbered.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from common.errors import InputError

PRIVATE_MODE = 0o600


def check_writable(path: Path) -> Path:
    """The path, or an InputError naming why askq will not write there; nothing is created."""
    folder = path.parent
    if not folder.exists():
        raise InputError(f"{path}: no such folder {str(folder)!r}; create it first")
    if not folder.is_dir():
        raise InputError(f"{path}: {str(folder)!r} is not a folder")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
    if stat.S_ISLNK(mode):
        raise InputError(f"{path}: is a symbolic link; askq writes only to a plain file or a new name")
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder; give a file name")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is not a regular file")
    return path


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` when the block ends without an error."""
    check_writable(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{path}: cannot write in {str(path.parent)!r} ({exc.strerror})") from None
    try:
        os.fchmod(handle, PRIVATE_MODE)  # mkstemp's own mode, said again: the name states the intent
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        check_writable(path)  # a link planted while we wrote is refused, not replaced
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    with replaced_atomically(path) as out:
        out.write(text)
