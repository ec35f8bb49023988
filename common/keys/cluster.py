"""askq's prefix, and the keys there is one of per Redis: batches, finished jobs, metrics, workers."""

from __future__ import annotations

__all__ = ["BATCHES", "FINISHED", "LINEAGE", "METRICS", "PREFIX", "REJECTED", "WORKERS"]

PREFIX = "askq"
BATCHES = f"{PREFIX}:batches"
"""Sorted set of batch names by creation time."""
FINISHED = f"{PREFIX}:finished"
"""Sorted set of job ids by finish time (unix seconds): an ``answers`` schedule reads its window here."""

METRICS = f"{PREFIX}:metrics"
"""Hash of cluster-wide counters for ``GET /metrics`` (fields: ``common.metrics``): jobs ended by state,
provider attempts by outcome and status, tokens, the job latency histogram. Written by the same Lua
calls that end a job, so it never drifts from the job records. Never expires: a counter must only
rise (a scrape computes rates from it), and its fields are a few dozen, however many jobs run."""
WORKERS = f"{PREFIX}:workers"
"""Sorted set of the live questions workers: worker id -> expiry (Redis time, ms), renewed by each
worker's heartbeat and removed at its clean shutdown; ``askq_workers_alive`` counts the unexpired.
Never expires as a whole: each heartbeat drops the members long expired."""

LINEAGE = f"{PREFIX}:lineage"
"""Hash with a random token, never expiring, written by the first submit or worker: when it vanishes
or changes under a worker, Redis lost askq's data (``common.redis_health``)."""

REJECTED = f"{PREFIX}:rejected"
"""Stream of jobs a worker refused to run (unreadable, an unknown function, a payload not of askq's
schema or naming another job): arq job id and reason."""
