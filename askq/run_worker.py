"""``askq worker``: the questions worker and, when jobs.yaml has schedules, the schedules worker.

Both are arq workers in one process and one event loop, sharing the provider client and the
semaphore, so a summary's model calls and the questions' calls are bounded together. The questions
worker owns the signals: when it stops (SIGTERM, or its queue is empty under ``--burst``), the
schedules worker stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from common.config import AskqConfig, load_config
from common.logs import configure_logging
from common.redis_health import check_memory_policy
from common.redis_url import check_url, connection_error, redis_url
from producer.connection import connect
from worker.answering.client import provider_endpoint
from worker.answering.provider_check import check_provider, configured_models
from worker.queue.askq_worker import AskqWorker
from worker.schedules.settings import schedule_worker_settings
from worker.settings import close_shared, shared_provider, with_concurrency, worker_settings

log = structlog.get_logger(__name__)


def run_worker(*, burst: bool, concurrency: int | None, verbose: bool, provider_check: bool = True) -> int:
    configure_logging(verbose=verbose)
    config = with_concurrency(load_config(), concurrency)
    provider_endpoint()  # refuse a missing provider before touching Redis
    url = check_url(redis_url())
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_reachable(url))
            runner.run(serve(config, url, burst=burst, provider_check=provider_check))
    except asyncio.CancelledError:
        # arq cancels what outlived the shutdown grace; those jobs are back in the queue already.
        return 0
    except (RedisError, ConnectionError) as exc:  # Redis lost while starting; other errors are bugs
        raise connection_error(url, exc) from None
    return 0


async def _reachable(url: str) -> None:
    """One ping first: a refused password or a server that is not there is one line, not arq's
    retries (which stay for a Redis lost later). A Redis that can evict askq's keys is refused."""
    async with connect(url) as redis:
        warning = await check_memory_policy(redis)
    if warning is not None:
        log.warning(warning)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: py-spy showed a fifth of a busy worker in asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # not built for every platform (Windows); asyncio's loop serves
        return None
    return uvloop.new_event_loop


async def serve(config: AskqConfig, url: str, *, burst: bool, provider_check: bool = True) -> None:
    shared = shared_provider(config)
    if provider_check:
        try:
            await check_provider(shared["client"], configured_models(config))
        except BaseException:
            await close_shared(shared)
            raise
    questions = AskqWorker(**worker_settings(config, url=url, burst=burst, shared=shared))
    schedules = (
        AskqWorker(**schedule_worker_settings(config, url=url, burst=burst, shared=shared))
        if config.schedules
        else None
    )
    schedules_run = asyncio.create_task(schedules.async_run()) if schedules is not None else None
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await questions.async_run()
        if schedules_run is not None and burst:
            await schedules_run
    finally:
        if schedules is not None and schedules_run is not None:
            schedules_run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedules_run
            await schedules.close()
        await questions.close()
        await close_shared(shared)
