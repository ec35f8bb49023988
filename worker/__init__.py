"""The arq worker: ``askq worker``, or ``arq worker.WorkerSettings`` for those who know arq.

``ScheduleWorkerSettings`` serves the schedules of jobs.yaml (``askq worker`` runs both in one
process). Each is built on first access from ``jobs.yaml`` ($ASKQ_CONFIG) and ``REDIS_URL``,
so importing the package reads no file and opens no connection.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        from common.logs import configure_logging
        from worker.settings import worker_settings

        configure_logging()
        return type("WorkerSettings", (), worker_settings())
    if name == "ScheduleWorkerSettings":
        from common.config import load_config
        from common.logs import configure_logging
        from common.redis_url import redis_url
        from worker.schedules.settings import schedule_worker_settings

        configure_logging()
        settings = schedule_worker_settings(load_config(), url=redis_url())
        return type("ScheduleWorkerSettings", (), settings)
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
