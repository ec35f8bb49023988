"""What the job page shows before its script runs: the job as stored, with the figures only its record
holds (its latency), so that an ended job reads whole without JavaScript."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from common import keys, record
from common.status import TERMINAL_STATES
from common.stored_jobs import read_job
from producer.job_status import job_status, retried_reasons
from producer.results import Result, result_from_record

_ENDED = frozenset(state.value for state in TERMINAL_STATES)


@dataclass(frozen=True)
class JobView:
    job_id: str
    batch: str
    job: Result
    latency_ms: float | None
    """From the job's start to its end (ended jobs only; the page's script takes it from the events)."""
    retried: tuple[str, ...] = ()
    """Why its last run retried each attempt: the timeline of an ended job, whose events left the log."""

    @property
    def ended(self) -> bool:
        return self.job.status in _ENDED

    @property
    def latency(self) -> str:
        return "—" if self.latency_ms is None else duration(self.latency_ms / 1000)


async def job_view(redis: Redis, job_id: str) -> JobView:
    """The job's view; NotFoundError (naming its batch or item) when there is no such job."""
    fields = await read_job(redis, job_id)
    # One read for the usual case; job_status says which of the batch or the item is unknown.
    job = result_from_record(job_id, fields) if fields else await job_status(redis, job_id)
    batch, _ = keys.split_job_id(job_id)
    ended = job.status in _ENDED
    return JobView(
        job_id=job_id,
        batch=batch,
        job=job,
        latency_ms=_latency_ms(fields, job.status),
        retried=tuple(retried_reasons(fields)) if ended else (),
    )


def _latency_ms(fields: dict[str, str], state: str) -> float | None:
    if state not in _ENDED:
        return None  # a retried job's record may still hold its previous run's
    try:
        return float(fields[record.LATENCY_MS])
    except (KeyError, ValueError):
        return None


def duration(seconds: float) -> str:
    """As the page's script writes it (``askq.duration``): ``850 ms``, ``12.3 s``, ``4 min``, ``1.5 h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
