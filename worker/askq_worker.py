"""arq's ``Worker``, made to ride out Redis outages instead of exiting on the first refused poll.

A Redis restart makes arq's poll raise; stock arq lets that end the worker. Here the poll waits and
tries again with backoff, logging when Redis goes away and when it is back, and running jobs wait
out the outage on their own (``worker.store``). Its claim on a job it starts is a short lease
rather than the job's whole timeout. Everything else is arq's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from arq.worker import Worker

from common.config import AskqConfig
from common.reconnect import CONNECTION_ERRORS, Backoff

log = structlog.get_logger(__name__)


class ResilientWorker(Worker):
    _backoff: Backoff | None = None
    _outage = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config: AskqConfig = self.ctx["config"]
        # arq's claim on a job it starts lasts the job's whole timeout; a lease instead, renewed by
        # worker.leases, so a job whose start failed half-way is not stranded for ten minutes.
        self.in_progress_timeout_s = config.limits.lease_s

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except CONNECTION_ERRORS as exc:
            self._backoff = self._backoff or Backoff()
            notice = self._backoff.failed(exc)
            log.warning("redis unavailable; polling again", error=notice.error, retry_in_s=notice.retry_in_s)
            self._outage = True
            await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
            return
        if self._outage:
            log.info("redis reachable again")
            self._outage = False
            if self._backoff is not None:
                self._backoff.succeeded()
