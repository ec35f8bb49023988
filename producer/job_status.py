"""One job's status (``askq status BATCH:ITEM``): its state, attempts, tokens, error and sources."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.errors import NotFoundError
from common.stored_jobs import read_job
from producer.batches import unknown_batch
from producer.results import Result, result_from_record


def is_job_id(name: str) -> bool:
    """A batch's name has no ':' (``keys.split_job_id``): a name with one is a job's id."""
    return ":" in name


async def job_status(redis: Redis, job_id: str) -> Result:
    """The job as stored; NotFoundError naming its batch or item when there is none."""
    return (await job_record(redis, job_id))[0]


async def job_record(redis: Redis, job_id: str) -> tuple[Result, dict[str, str]]:
    """The job as stored, and its record's fields; NotFoundError as ``job_status``."""
    fields = await read_job(redis, job_id)
    if fields:
        return result_from_record(job_id, fields), fields
    batch, item_id = keys.split_job_id(job_id)
    if not await redis.exists(keys.batch_record(batch)):
        raise await unknown_batch(redis, batch)
    raise NotFoundError(
        f"batch {batch} has no item {item_id!r} (or its record expired): `askq status {batch} --ids` "
        "lists its jobs"
    )


def job_document(job: Result, retried: list[str] | None = None) -> dict[str, Any]:
    """The job as JSON: its result line (``askq results``) with ``error_code``, ``model``,
    ``first_token_ms`` and, when given, ``retried`` added."""
    document = {
        **job.to_json(),
        "error_code": job.error_code,
        "model": job.model,
        "first_token_ms": job.first_token_ms,
    }
    if retried is not None:
        document["retried"] = retried
    return document


def retried_reasons(fields: dict[str, str]) -> list[str]:
    """Why the job's last run retried each of its attempts, in order (empty: none, or not ended)."""
    try:
        reasons = json.loads(fields.get(record.RETRIED) or "[]")
    except ValueError:
        return []
    return [str(reason) for reason in reasons] if isinstance(reasons, list) else []
