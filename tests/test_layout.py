"""The house plan holds: imports only run downward, between packages and inside the worker."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What each package may import of the project's own packages (besides itself).
ALLOWED = {
    "common": set(),
    "producer": {"common"},
    "worker": {"common"},
    "askq": {"common", "producer", "worker", "server"},
    "server": {"common", "producer"},  # a producer-side program: it never imports the worker
    "simulator": set(),
    "bench": {
        "common",
        "askq",
        "producer",
        "worker",
        "server",
    },  # the queue benchmark runs AskqWorker in-process
}
# Inside the worker: the queue machinery knows nothing of answering or schedules, answering nothing
# of schedules; the worker's own top modules (settings, context, logging) assemble them.
WORKER_ALLOWED = {
    "worker.queue": {"worker.queue"},
    "worker.answering": {"worker.answering", "worker.queue", "worker.context"},
    "worker.schedules": {
        "worker.schedules",
        "worker.answering",
        "worker.queue",
        "worker.context",
        "worker.settings",
    },
    # Building and searching a base embed as answers call: under the same gate, retry and client.
    # Never worker.settings, which assembles the knowledge modules: that would be a cycle.
    "worker.knowledge": {"worker.knowledge", "worker.answering", "worker.queue", "worker.context"},
}


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports, at any depth (lazy imports in functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    return sorted((REPO / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_downward(package: str) -> None:
    """producer and worker never import each other; common imports neither; the simulator stands apart."""
    ours = set(ALLOWED)
    for path in _files(package):
        for module in _imports(path):
            top = module.split(".")[0]
            if top in ours and top != package:
                assert top in ALLOWED[package], f"{path.relative_to(REPO)} imports {module}"


@pytest.mark.parametrize("subpackage", sorted(WORKER_ALLOWED))
def test_worker_subpackages_import_only_downward(subpackage: str) -> None:
    """queue < answering < schedules inside the worker: no import runs back up."""
    for path in _files(subpackage):
        for module in _imports(path):
            if not module.startswith("worker."):
                continue
            allowed = WORKER_ALLOWED[subpackage]
            assert any(module == name or module.startswith(name + ".") for name in allowed), (
                f"{path.relative_to(REPO)} imports {module}"
            )
