"""Secrets stay out of messages: API keys and Redis passwords are masked."""

from __future__ import annotations

import pytest

from common.redis_url import redact, unreachable_message
from common.secrets import redact_secrets


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
