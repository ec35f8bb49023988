"""A non-editable ``pip install .`` (what the Dockerfile does) gives a working ``askq``, run from anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.test_packaging import top_level_packages

REPO = Path(__file__).resolve().parents[1]
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def _copy_source(target: Path) -> None:
    """The files a build reads, copied: building in the shared tree would write build/ and egg-info there."""
    target.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, target / name)
    for package in top_level_packages():
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))


def _venv_with_project_dependencies(folder: Path) -> Path:
    """A fresh venv that also sees this venv's packages (offline, fast), but not its editable askq.

    The path line in a .pth file is appended to sys.path; the .pth files inside that folder (the
    editable install's finder among them) are not run, so ``import askq`` can only find the new install.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_askq_demo_works_after_a_non_editable_install(tmp_path: Path) -> None:
    """After `pip install .` into a fresh venv, `askq demo` run outside the repo finds its questions, and
    the server has the Swagger UI files /docs loads."""
    source = tmp_path / "source"
    _copy_source(source)
    python = _venv_with_project_dependencies(tmp_path / "venv")
    # As the Dockerfile does, but --no-deps: only the build backend (setuptools>=68, which pip caches) is
    # fetched. Not --no-build-isolation: this venv's setuptools is older than pyproject.toml requires.
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # nothing may still point at the sources

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "ASKQ_CONFIG", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    where = subprocess.run(
        [str(python), "-c", "import askq; print(askq.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        check=True,
    )
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # the install, not the repo
    swagger_ui = subprocess.run(
        [
            str(python),
            "-c",
            "from server.docs import SWAGGER_UI_FILES as f; print(*sorted(p.name for p in f.iterdir()))",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        check=True,
    )
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} <= set(swagger_ui.stdout.split())  # /docs's
    demo = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "askq"), "demo"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stderr
    assert "answered in batch" in demo.stderr
