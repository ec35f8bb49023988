"""A question file named on the command line, or standard input (``-``) spooled to a temporary file.

Submit reads its input twice (the check, then the enqueue), and standard input can be read once:
it is copied to a private temporary file in 1 MiB blocks, so memory stays flat, and the file is
removed when the submit ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from common.errors import InputError
from producer.lines import FORMATS

STDIN = "-"
STDIN_NAME = "<stdin>"
_BLOCK = 1 << 20


@contextmanager
def question_file(path: Path, fmt: str | None, stdin: BinaryIO | None = None) -> Iterator[tuple[Path, str]]:
    """(the file to read, its name in messages): ``path`` itself, or standard input spooled."""
    if str(path) != STDIN:
        yield path, str(path)
        return
    if fmt is None:
        raise InputError(f"reading questions from standard input (-) needs --format {'|'.join(FORMATS)}")
    descriptor, name = tempfile.mkstemp(prefix="askq-stdin-")  # readable by its owner only
    spooled = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            shutil.copyfileobj(stdin or sys.stdin.buffer, handle, _BLOCK)
        yield spooled, STDIN_NAME
    finally:
        spooled.unlink(missing_ok=True)
