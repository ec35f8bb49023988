"""The arq worker: ``askq worker``, or ``arq worker.WorkerSettings`` for those who know arq.

``WorkerSettings`` is built on first access from ``jobs.yaml`` ($ASKQ_CONFIG) and ``REDIS_URL``,
so importing the package reads no file and opens no connection.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        from worker.logging import configure_logging
        from worker.settings import worker_settings

        configure_logging()
        return type("WorkerSettings", (), worker_settings())
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
