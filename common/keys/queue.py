"""The arq queues and arq's own keys (fixed by arq, re-exported so that they too have one home)."""

from __future__ import annotations

from arq.constants import (
    abort_jobs_ss,
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

from common.keys.cluster import PREFIX

__all__ = [
    "ANSWER_FUNCTION",
    "ARQ_ABORT",
    "ARQ_IN_PROGRESS_PREFIX",
    "ARQ_JOB_PREFIX",
    "ARQ_RESULT_PREFIX",
    "ARQ_RETRY_PREFIX",
    "QUEUE",
    "SCHEDULE_HEALTH",
    "SCHEDULE_QUEUE",
    "SUMMARIZE_FUNCTION",
    "WAKE_FROM_HEAD",
    "arq_in_progress",
    "arq_job",
    "arq_retry",
    "queue_wake",
]

QUEUE = f"{PREFIX}:queue"

ARQ_JOB_PREFIX = job_key_prefix
ARQ_IN_PROGRESS_PREFIX = in_progress_key_prefix
ARQ_RETRY_PREFIX = retry_key_prefix
ARQ_RESULT_PREFIX = result_key_prefix
ARQ_ABORT = abort_jobs_ss
"""arq's sorted set of job ids to abort; workers cancel a running job listed there."""


def queue_wake(queue: str) -> str:
    """Channel a producer publishes to after enqueueing: idle workers poll at once, not at their next poll."""
    return f"{queue}:wake"


WAKE_FROM_HEAD = b"head"
"""A wake-up saying a job went back to its old place in the queue: read it again from its head."""


SCHEDULE_QUEUE = f"{PREFIX}:schedules"
"""arq queue of scheduled summary runs, served apart so that a backlog of questions never delays one."""
SCHEDULE_HEALTH = f"{SCHEDULE_QUEUE}{health_check_key_suffix}"
"""arq's health record of a worker serving the schedules queue; it lapses when none is up."""

ANSWER_FUNCTION = "answer"
"""Name of the arq job function that answers one question."""
SUMMARIZE_FUNCTION = "summarize"
"""Name of the arq job function that runs a schedule now (``askq schedule run``, or a catch-up)."""


def arq_job(job_id: str) -> str:
    return f"{ARQ_JOB_PREFIX}{job_id}"


def arq_in_progress(job_id: str) -> str:
    """arq's claim on a running job; askq keeps it short-lived (see ``worker.queue.leases``)."""
    return f"{ARQ_IN_PROGRESS_PREFIX}{job_id}"


def arq_retry(job_id: str) -> str:
    """arq's count of the job's starts."""
    return f"{ARQ_RETRY_PREFIX}{job_id}"
