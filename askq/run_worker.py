"""``askq worker``: an arq worker built from jobs.yaml, with a clear line when Redis is not there."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError

from common.config import load_config
from common.errors import RedisUnavailableError
from common.redis_url import redis_url, unreachable_message
from worker.logging import configure_logging
from worker.resilient import ResilientWorker
from worker.settings import provider_endpoint, worker_settings


def run_worker(*, burst: bool, concurrency: int | None, verbose: bool) -> int:
    configure_logging(verbose=verbose)
    config = load_config()
    provider_endpoint()  # refuse a missing provider before touching Redis
    url = redis_url()
    worker = ResilientWorker(**worker_settings(config, url=url, concurrency=concurrency, burst=burst))
    try:
        worker.run()
    except asyncio.CancelledError:
        # arq cancels what outlived the shutdown grace; those jobs are back in the queue already.
        return 0
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(unreachable_message(url, str(exc).split("\n")[0])) from None
    return 0
