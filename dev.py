#!/usr/bin/env python3
"""Bootstrap and run askq from a fresh clone with nothing but Python 3.11+.

    python3 dev.py demo     the whole pipeline locally: embedded Redis, simulator, a worker
    python3 dev.py test     lint, type checks and the test suite (what CI runs)
    python3 dev.py askq ... any askq command inside the project's environment

The first run creates .venv and installs the project with its dev tools; later runs reinstall only
when pyproject.toml has changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".askq-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  # this file must run on any python3 to say so
        sys.exit(f"askq needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("installing askq and its dev tools into .venv ...", file=sys.stderr)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", ".[dev]"], cwd=ROOT, check=True)
        STAMP.write_text(wanted)


def run(*command: str) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def test(extra: list[str]) -> int:
    checks = [
        (str(BIN / "ruff"), "check", "."),
        (str(BIN / "ruff"), "format", "--check", "."),
        (str(BIN / "mypy"),),
        (str(BIN / "python"), "-m", "pytest", *extra),
    ]
    for check in checks:
        code = run(*check)
        if code != 0:
            shown = " ".join([Path(check[0]).name, *check[1:]])
            print(f"failed: {shown}", file=sys.stderr)
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "askq"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        return test(rest)
    if command == "demo":
        return run(str(BIN / "askq"), "demo", *rest)
    return run(str(BIN / "askq"), *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
