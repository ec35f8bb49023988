"""One job's status (``askq status BATCH:ITEM``): its state, attempts, tokens, error and sources."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from common import keys
from common.errors import NotFoundError
from common.stored_jobs import read_job
from producer.batches import unknown_batch
from producer.results import Result, result_from_record


def is_job_id(name: str) -> bool:
    """A batch's name has no ':' (``keys.split_job_id``): a name with one is a job's id."""
    return ":" in name


async def job_status(redis: Redis, job_id: str) -> Result:
    """The job as stored; NotFoundError naming its batch or item when there is none."""
    fields = await read_job(redis, job_id)
    if fields:
        return result_from_record(job_id, fields)
    batch, item_id = keys.split_job_id(job_id)
    if not await redis.exists(keys.batch_record(batch)):
        raise await unknown_batch(redis, batch)
    raise NotFoundError(
        f"batch {batch} has no item {item_id!r} (or its record expired): `askq status {batch} --ids` "
        "lists its jobs"
    )


def job_document(job: Result) -> dict[str, Any]:
    """The job as JSON: its result line (``askq results``) with ``error_code``, ``model`` and
    ``first_token_ms`` added."""
    return {
        **job.to_json(),
        "error_code": job.error_code,
        "model": job.model,
        "first_token_ms": job.first_token_ms,
    }
