"""docker-compose.yml and the build: no Docker engine runs here, so the file is checked statically."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import redis
import yaml

from askq.cli import build_parser
from askq.stack import embedded_redis, redis_server_binary
from common.config import AskqConfig

REPO = Path(__file__).resolve().parents[1]
# Compose's "required" interpolation: `docker compose` refuses to start when the variable is unset or empty.
REQUIRED_PASSWORD = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")
# X.Y.Z with an optional variant (-alpine, -slim-bookworm), or a digest: never latest or a bare major.
EXACT_IMAGE = re.compile(r"[\w./-]+(:\d+\.\d+\.\d+(-[\w.-]+)?(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _dockerfile_instructions(keyword: str) -> list[str]:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    return [line.split(None, 1)[1] for line in lines if line.upper().startswith(keyword + " ")]


def test_redis_service_persists_with_aof_and_has_a_health_check() -> None:
    """Redis runs with appendonly on a volume, and workers wait for its health check."""
    services = _compose()["services"]
    assert "--appendonly" in services["redis"]["command"]
    assert "yes" in services["redis"]["command"]
    assert services["redis"]["healthcheck"]["test"][0] == "CMD-SHELL"
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


def top_level_packages() -> list[str]:
    """The top-level packages pyproject.toml installs (each with its subpackages)."""
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return [pattern.removesuffix("*") for pattern in found["include"]]


def test_dockerfile_copies_every_package() -> None:
    """The image holds every package pyproject.toml installs."""
    dockerfile = (REPO / "Dockerfile").read_text()
    packages = top_level_packages()
    assert packages
    assert all(f"COPY {package} {package}" in dockerfile for package in packages)


def test_workers_get_longer_than_the_shutdown_grace_before_sigkill() -> None:
    """docker stop waits past limits.shutdown_grace_s, so running jobs finish or requeue first."""
    grace = _compose()["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > AskqConfig().limits.shutdown_grace_s


def test_redis_is_private_and_requires_the_password_from_the_environment() -> None:
    """Redis publishes no port; its password, its health check and the workers' URL need REDIS_PASSWORD."""
    services = _compose()["services"]
    redis_service = services["redis"]
    assert "ports" not in redis_service
    command = redis_service["command"]
    assert REQUIRED_PASSWORD.fullmatch(command[command.index("--requirepass") + 1])
    assert REQUIRED_PASSWORD.fullmatch(redis_service["environment"]["REDISCLI_AUTH"])
    url = services["worker"]["environment"]["REDIS_URL"]
    assert re.fullmatch(r"redis://:(.+)@redis:6379/0", url)
    assert REQUIRED_PASSWORD.fullmatch(url.removeprefix("redis://:").removesuffix("@redis:6379/0"))


def test_nothing_is_published_beyond_loopback() -> None:
    """Every published port binds 127.0.0.1, so no service is reachable from other machines."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name


def test_redis_health_check_passes_only_when_authenticated(tmp_path: Path) -> None:
    """The compose health check, run against a real Redis with a password, fails on a wrong or no password."""
    check = _compose()["services"]["redis"]["healthcheck"]["test"][1]
    password = "health-pw-1"
    redis_cli = Path(redis_server_binary()).with_name("redis-cli")
    with embedded_redis(tmp_path / "redis") as url:
        with redis.Redis.from_url(url) as client:
            client.config_set("requirepass", password)
        # In the container Redis listens on the default port; here redis-cli is pointed at this one.
        shim = tmp_path / "bin" / "redis-cli"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec "{redis_cli}" -p {url.rsplit(":", 1)[1]} "$@"\n')
        shim.chmod(0o755)
        env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
        env.pop("REDISCLI_AUTH", None)

        def health(auth: str | None) -> int:
            extra = {} if auth is None else {"REDISCLI_AUTH": auth}
            done = subprocess.run(["sh", "-c", check], env={**env, **extra}, capture_output=True, timeout=10)
            return done.returncode

        assert health(password) == 0
        assert health("wrong") != 0
        assert health(None) != 0


def test_every_image_is_an_exact_version() -> None:
    """Compose images and the Dockerfile's base name an exact version or digest, never a floating tag."""
    images = [service["image"] for service in _compose()["services"].values() if "image" in service]
    images += _dockerfile_instructions("FROM")
    assert len(images) >= 2
    for image in images:
        assert EXACT_IMAGE.fullmatch(image), image


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    """The Dockerfile ends as a created user with a fixed non-zero uid, and no service overrides it."""
    user = _dockerfile_instructions("USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit(), user
    assert int(uid) != 0
    assert f"--uid {uid} " in (REPO / "Dockerfile").read_text()
    assert all("user" not in service for service in _compose()["services"].values())


def test_build_context_leaves_out_secrets_and_local_state() -> None:
    """.dockerignore keeps .env (the compose password), .git and .venv out of the build context."""
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv"} <= set(ignored)
