"""docker-compose.yml and the build: no Docker engine runs here, so the file is checked statically."""

from __future__ import annotations

from pathlib import Path

import yaml

from askq.cli import build_parser
from common.config import AskqConfig

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_redis_service_persists_with_aof_and_has_a_health_check() -> None:
    """Redis runs with appendonly on a volume, and workers wait for its health check."""
    services = _compose()["services"]
    assert "--appendonly" in services["redis"]["command"]
    assert "yes" in services["redis"]["command"]
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "container_name" not in services["worker"]  # a fixed name would forbid --scale


def test_every_service_command_exists_in_the_project() -> None:
    """Each service's command is an askq subcommand, the simulator module, or redis-server."""
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name, service in _compose()["services"].items():
        command = service["command"]
        if command[0] == "askq":
            assert command[1] in subcommands, name
        elif command[:2] == ["python", "-m"]:
            assert (REPO / command[2] / "__main__.py").is_file(), name
        else:
            assert command[0] == "redis-server", name


def test_dockerfile_copies_every_package() -> None:
    """The image holds every package pyproject.toml installs."""
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = yaml.safe_load(
        "[" + (REPO / "pyproject.toml").read_text().split("packages = [")[1].split("]")[0] + "]"
    )
    assert packages
    assert all(f"COPY {package} {package}" in dockerfile for package in packages)


def test_workers_get_longer_than_the_shutdown_grace_before_sigkill() -> None:
    """docker stop waits past limits.shutdown_grace_s, so running jobs finish or requeue first."""
    grace = _compose()["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > AskqConfig().limits.shutdown_grace_s
