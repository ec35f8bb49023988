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


@pytest.mark.parametrize(
    ("base", "says", "secret"),
    [
        ("http://alice:pw-in-url@{host}/v1", "credentials in the URL cannot be sent", "pw-in-url"),
        ("http://tok3n-in-url@{host}/v1", "credentials in the URL cannot be sent", "tok3n-in-url"),
        ("http://{host}/v1?api-key=key-in-url", "takes no ?query", "key-in-url"),
        ("http://[::1/v1", "not a URL", None),
        ("localhost:8000/v1", "expected an http:// or https:// URL", None),
    ],
)
def test_a_base_url_the_client_cannot_use_is_refused_masked(
    sim: Simulator, redis: Redis, base: str, says: str, secret: str | None
) -> None:
    """OPENAI_BASE_URL with credentials, a query or no scheme is refused at start in one line, with
    any secret in it hidden: the client could not use it, and every job failed or leaked it in logs."""
    url = base.format(host=sim.base_url.removeprefix("http://").removesuffix("/v1"))
    done = askq("worker", "--burst", "--no-provider-check", env={"OPENAI_BASE_URL": url})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr
    assert secret is None or secret not in done.stderr


def test_passwords_with_an_at_sign_are_masked_whole() -> None:
    """An unescaped '@' inside a password does not leave its tail in clear."""
    assert redact_secrets("redis://:p@ss@host:6379/0") == "redis://:***@host:6379/0"
