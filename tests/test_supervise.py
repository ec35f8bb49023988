"""A worker's long-lived tasks never die silently: a crashed loop is logged and started again."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.helpers import eventually
from worker.queue import supervise
from worker.queue.supervise import supervised


async def test_a_crashed_loop_is_logged_once_with_its_traceback_and_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug is logged as an error with its traceback the first time, one line after; the loop runs again."""
    monkeypatch.setattr(supervise, "RESTART_AFTER_S", 0.01)  # restarts in a test's time
    runs: list[int] = []

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise KeyError("boom")
        if len(runs) == 3:
            raise RedisConnectionError("Connection reset by peer")
        await asyncio.Event().wait()  # the fourth run stays up

    with structlog.testing.capture_logs() as logged:
        task = supervised(loop, "test loop")

        async def restarted() -> bool:
            return len(runs) == 4

        await eventually(restarted)
        task.cancel()
    crashes = [entry for entry in logged if entry["event"] == "background task crashed; restarting"]
    assert [entry.get("exc_info", False) for entry in crashes] == [True, False]
    assert all(entry["task"] == "test loop" and "boom" in entry["error"] for entry in crashes)
    lost = [entry for entry in logged if entry["event"] == "background task lost redis; restarting"]
    assert len(lost) == 1
    assert "exc_info" not in lost[0]


async def test_a_loop_that_returns_ends_its_task() -> None:
    """A loop that ends by itself (the relay after its last flush) is not started again."""
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)

    await supervised(loop, "once")
    assert runs == [1]
