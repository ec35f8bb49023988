"""Secrets stay out of messages: API keys and Redis passwords are masked."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from common.redis_url import redact, unreachable_message
from common.secrets import redact_secrets
from tests.conftest import Simulator
from tests.helpers import askq


def test_configured_api_key_is_masked_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact OPENAI_API_KEY value never survives, whatever its shape."""
    monkeypatch.setenv("OPENAI_API_KEY", "custom-secret-token-123")
    assert redact_secrets("auth failed for custom-secret-token-123!") == "auth failed for ***!"


def test_key_shaped_strings_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything shaped like an OpenAI key keeps only its first characters."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    text = redact_secrets("Incorrect API key provided: sk-proj-abcdefghijklmnop.")
    assert "abcdefghijklmnop" not in text
    assert text.startswith("Incorrect API key provided: sk-proj***")


def test_redis_passwords_are_masked_in_urls() -> None:
    """redis:// and rediss:// URLs lose their password, keep user, host, port and database."""
    assert redact("rediss://app:s3cret@cache.example:6380/2") == "rediss://app:***@cache.example:6380/2"
    assert redact("redis://localhost:6379") == "redis://localhost:6379"
    assert "s3cret" not in unreachable_message("redis://:s3cret@h:1", "refused")
    assert redact_secrets("connect redis://:s3cret@h:1 failed") == "connect redis://:***@h:1 failed"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:p4ss@llm.example/v1", "https://user:***@llm.example/v1"),
        ("https://llm.example/v1?api-key=abc123&x=1", "https://llm.example/v1?api-key=***&x=1"),
        ("http://h/v1?x=1&token=t0k#frag", "http://h/v1?x=1&token=***#frag"),
    ],
)
def test_provider_url_credentials_are_masked(url: str, shown: str) -> None:
    """Credentials inside OPENAI_BASE_URL (user:pass@, ?api-key=, &token=) never reach a log line."""
    assert redact_secrets(f"provider={url}") == f"provider={shown}"


def test_worker_start_line_masks_base_url_credentials(sim: Simulator, redis: Redis) -> None:
    """askq worker logs its provider without the key embedded in OPENAI_BASE_URL's query."""
    base = sim.base_url + "?api-key=key-in-url"
    done = askq("worker", "--burst", "--no-provider-check", env={"OPENAI_BASE_URL": base})
    assert done.returncode == 0, done.stderr
    assert "worker started" in done.stderr
    assert "key-in-url" not in done.stderr
    checked = askq("worker", "--burst", env={"OPENAI_BASE_URL": base})  # the client cannot use it
    assert checked.returncode == 1
    assert "api-key=***" in checked.stderr
    assert "key-in-url" not in checked.stderr


def test_a_password_in_the_base_url_is_refused_masked(sim: Simulator, redis: Redis) -> None:
    """user:pass@ in OPENAI_BASE_URL cannot be sent beside the key: one line, the password hidden."""
    base = sim.base_url.replace("http://", "http://alice:pw-in-url@")
    done = askq("worker", "--burst", env={"OPENAI_BASE_URL": base})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "a password in the URL cannot be sent" in done.stderr
    assert "alice:***@" in done.stderr
    assert "pw-in-url" not in done.stderr
