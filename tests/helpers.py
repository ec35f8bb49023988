"""Helpers shared by tests: run a burst worker in-process, read results."""

from __future__ import annotations

from typing import Any

from arq.worker import Worker
from redis.asyncio import Redis

from common.config import AskqConfig
from producer.results import Result, iter_results
from worker.settings import worker_settings


async def run_burst_worker(config: AskqConfig, redis_url: str, **overrides: Any) -> Worker:
    """Run a worker until the queue is empty: the test's synchronisation point."""
    worker = Worker(
        **{**worker_settings(config, url=redis_url, burst=True), "handle_signals": False, **overrides}
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def results(redis: Redis, batch: str) -> list[Result]:
    return [result async for result in iter_results(redis, batch)]
