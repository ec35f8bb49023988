"""Session services: a private redis-server (or $REDIS_URL) and the simulator, both real processes.

Every test starts from an empty Redis database and the simulator's default fast settings.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from common.config import AskqConfig, parse_config
from tests.browser import browser

# Instant answers by default; a test that needs pacing or faults asks the simulator for them.
SIMULATOR_DEFAULTS: dict[str, Any] = {
    "ttft_ms": 0,
    "tokens_per_s": 0,
    "answer_tokens": 24,
    "rate_429": 0,
    "rate_500": 0,
    "rate_503": 0,
    "rate_cut": 0,
    "rate_error_in_stream": 0,
    "rate_badline": 0,
    "retry_after_s": 0.2,
    "cut_after_chunks": 3,
    "slow_start_ms": 0,
    "rpm_limit": 0,
    "rpm_window_s": 60.0,
    "tpm_limit": 0,
    "tpm_window_s": 60.0,
    "ratelimit_headers": True,
    "overload_in_flight": 0,
    "require_api_key": None,
    "strict_models": False,
    "record_requests": False,
    "batch_delay_ms": 0,
    "slots": 0,
    "interrupt_on_wait": False,
    "usage_chunk": True,
    "context_tokens": 0,
    "close_after_response": False,
    "embeddings": True,
    "bad_embeddings": 0,
}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$REDIS_URL (a disposable database: tests empty it) or a private redis-server for the session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    with simulator_process() as base_url:
        yield base_url


class Simulator:
    """The simulator's admin endpoints, over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1")

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root + path,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def configure(self, **settings: Any) -> None:
        self._call("/_sim/settings", settings)

    def reset(self) -> None:
        self._call("/_sim/reset", {})

    def settings(self) -> dict[str, Any]:
        return self._call("/_sim/settings")

    def stats(self) -> dict[str, Any]:
        return self._call("/_sim/stats")

    def down(self, seconds: float) -> None:
        """Be down (connections refused) for ``seconds``; down already when this returns."""
        self._call("/_sim/down", {"seconds": seconds})

    def requests(self) -> list[dict[str, str]]:
        """With ``record_requests``: each answered request's last user message and answer, in order."""
        recorded: list[dict[str, str]] = self._call("/_sim/requests")["requests"]
        return recorded

    def embeddings(self) -> list[dict[str, Any]]:
        """With ``record_requests``: each answered embeddings request's model, inputs and dimensions."""
        recorded: list[dict[str, Any]] = self._call("/_sim/embeddings")["requests"]
        return recorded


@pytest.fixture
def sim(simulator_url: str, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The shared simulator reset to fast defaults, and the provider env pointing at it."""
    simulator = Simulator(simulator_url)
    simulator.configure(**SIMULATOR_DEFAULTS)
    simulator.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", simulator_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return simulator


@pytest.fixture
async def redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    monkeypatch.setenv("REDIS_URL", redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def config() -> AskqConfig:
    """Defaults with retries fast enough for tests."""
    return parse_config(
        {"retry": {"attempts": 4, "initial_wait_s": 0.01, "max_wait_s": 0.05, "jitter_s": 0.01}}
    )


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """The system's headless Chromium for a console test (skipped without one: tests/browser.py)."""
    async with browser() as running:
        yield running
