"""askq worker looks at the provider once at start: a wrong URL, key or model is one line, not N 404s."""

from __future__ import annotations

import json
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import Simulator
from tests.helpers import askq


def _config(tmp_path: Path, model: str) -> dict[str, str]:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"provider:\n  model: {model}\n")
    return {"ASKQ_CONFIG": str(jobs)}


def test_a_base_url_without_v1_is_named(redis: Redis, sim: Simulator) -> None:
    """OPENAI_BASE_URL missing /v1: exit 1 naming both 404s and the URL to try."""
    done = askq("worker", "--burst", env={"OPENAI_BASE_URL": sim.root})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "answered 404 to /models and /chat/completions" in done.stderr
    assert f"try {sim.root}/v1" in done.stderr


def test_a_model_the_provider_does_not_serve_is_named(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """A provider refusing unknown models (as OpenAI does): exit 1 naming the model and the served ones."""
    sim.configure(strict_models=True)
    done = askq("worker", "--burst", env=_config(tmp_path, "gpt-9-imaginary"))
    assert done.returncode == 1
    assert "does not serve model 'gpt-9-imaginary' (it lists: gpt-4.1, gpt-4.1-mini" in done.stderr
    assert "provider.model" in done.stderr


def test_an_unlisted_model_a_server_accepts_is_fine(redis: Redis, sim: Simulator, tmp_path: Path) -> None:
    """A server that answers any model name (llama.cpp lists only its file's) lets the worker start."""
    done = askq("worker", "--burst", env=_config(tmp_path, "my-local-gguf"))
    assert done.returncode == 0, done.stderr
    assert sim.stats()["requests_total"] == 1  # the one-token request


def test_a_refused_key_is_named(redis: Redis, sim: Simulator) -> None:
    """A 401 from /models: exit 1 saying to check OPENAI_API_KEY, the key itself hidden."""
    sim.configure(require_api_key="the-right-key")
    done = askq("worker", "--burst", env={"OPENAI_API_KEY": "sk-wrongwrongwrongwrong"})
    assert done.returncode == 1
    assert "refused the API key (401" in done.stderr
    assert "check OPENAI_API_KEY" in done.stderr
    assert "wrongwrongwrong" not in done.stderr


def test_an_unreachable_provider_is_a_warning_not_a_refusal(redis: Redis) -> None:
    """A provider down at start: the worker starts anyway (jobs retry) and says so in one JSON line."""
    done = askq("worker", "--burst", env={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
    assert done.returncode == 0, done.stderr
    warnings = [json.loads(line) for line in done.stderr.splitlines() if '"warning"' in line]
    # The test Redis keeps no data on disk: the worker warns of that too, in a line of its own.
    about_provider = [line["event"] for line in warnings if "persistence" not in line["event"]]
    assert about_provider == ["provider check: provider unreachable; starting anyway"]


def test_the_check_can_be_skipped(redis: Redis, sim: Simulator) -> None:
    """--no-provider-check starts without asking the provider anything."""
    done = askq("worker", "--burst", "--no-provider-check", env={"OPENAI_BASE_URL": sim.root})
    assert done.returncode == 0, done.stderr
    assert sim.stats()["requests_total"] == 0
