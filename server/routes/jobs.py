"""``/api/jobs/{job_id}``: one job, as ``askq status BATCH:ITEM --json`` shows it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from producer.job_status import job_document, job_record, retried_reasons
from server.state import RedisDep

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/{job_id:path}")  # an item id may hold "/" (sent as %2F, decoded before routing)
async def get_job(job_id: str, redis: RedisDep) -> dict[str, Any]:
    """The job's state, attempts (and why its last run retried them), answer or error, usage and
    sources; 404 for an unknown batch or item."""
    job, fields = await job_record(redis, job_id)
    return job_document(job, retried_reasons(fields))
