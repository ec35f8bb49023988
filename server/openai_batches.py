"""OpenAI Batch API batches on askq batches: create one from an uploaded file, and say its status.

A batch's id is the name of the askq batch it runs as (``batch_`` and 32 hex digits: a valid askq
name), so ``askq status``, ``askq tail`` and the ``/api`` routes watch it too. What the Batch API says
beyond askq's counters (input file, metadata, the times it failed, was cancelled or ended) is a hash
of its own. A batch's status is worked out from askq's counters each time it is read; the first read
that finds every request ended makes its output and error files (``finalize``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.errors import NotFoundError
from common.status import JobState
from producer.batches import BatchStatus, batch_status
from producer.control import cancel_batch
from server import openai_files
from server.errors import ApiError
from server.openai_output import OUTPUT, output_sizes
from server.state import ServerState

CHAT_COMPLETIONS = "/v1/chat/completions"
STALE_FINALIZE_S = 300
"""A finalize begun this long ago and not done (its process died) is done again by the next read."""


@dataclass(frozen=True)
class BatchView:
    """A batch's stored fields and, once it was submitted and while askq keeps it, its askq status."""

    fields: dict[str, str]
    status: BatchStatus | None


def _time(fields: dict[str, str], name: str) -> int | None:
    return int(float(fields[name])) if fields.get(name) else None


def batch_object(view: BatchView) -> dict[str, Any]:
    """The batch as the Batch API's ``Batch`` object (openai-python's ``types/batch.py``)."""
    fields, askq = view.fields, view.status
    errors = json.loads(fields["errors"]) if fields.get("errors") else None
    counts = {"total": 0, "completed": 0, "failed": 0}
    usage = None
    if askq is not None:
        succeeded = askq.counts[JobState.SUCCEEDED]
        counts = {"total": askq.total, "completed": succeeded, "failed": askq.finished - succeeded}
        usage = {
            "input_tokens": askq.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": askq.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": askq.prompt_tokens + askq.completion_tokens,
        }
    return {
        "id": fields["id"],
        "object": "batch",
        "endpoint": fields["endpoint"],
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": fields["input_file_id"],
        "completion_window": fields["completion_window"],
        "status": status_of(view),
        "output_file_id": fields.get("output_file_id"),
        "error_file_id": fields.get("error_file_id"),
        "created_at": _time(fields, "created_at"),
        "in_progress_at": _time(fields, "in_progress_at"),
        "expires_at": None,
        "finalizing_at": _time(fields, "finalizing_at"),
        "completed_at": _time(fields, "completed_at"),
        "failed_at": _time(fields, "failed_at"),
        "expired_at": _time(fields, "expired_at"),
        "cancelling_at": _time(fields, "cancelling_at"),
        "cancelled_at": _time(fields, "cancelled_at"),
        "request_counts": counts,
        "metadata": json.loads(fields.get("metadata") or "null"),
        "model": None,
        "usage": usage,
    }


def status_of(view: BatchView) -> str:
    """validating until submitted; failed for a bad input file; in_progress (cancelling after a cancel)
    while requests are queued or running; finalizing while the output files are made; then completed
    or cancelled. Expired once askq no longer keeps the batch it ran as."""
    fields = view.fields
    if fields.get("failed_at"):
        return "failed"
    for ended in ("cancelled", "completed"):
        if fields.get(f"{ended}_at"):
            return ended
    if not fields.get("in_progress_at"):
        return "validating"
    if view.status is None:
        return "expired"
    if fields.get("finalizing_at"):
        return "finalizing"
    return "cancelling" if fields.get("cancelling_at") else "in_progress"


async def read_view(redis: Redis, batch_id: str) -> BatchView:
    """The batch's fields and askq status, finalized first if every request has ended; 404 if unknown."""
    fields = await _fields(redis, batch_id)
    status = await _askq_status(redis, fields)
    if status is not None and status.done and not _ended(fields):
        fields = await _finalize(redis, fields, status)
    return BatchView(fields, status)


async def _fields(redis: Redis, batch_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.openai_batch(batch_id))  # type: ignore[misc]  # redis-py types sync and async alike
    if not raw:
        raise ApiError(404, f"no batch {batch_id!r} (unknown or expired)", kind="not_found_error")
    return {name.decode(): value.decode() for name, value in raw.items()}


async def _askq_status(redis: Redis, fields: dict[str, str]) -> BatchStatus | None:
    if fields.get("failed_at") or not fields.get("in_progress_at"):
        return None  # never submitted: no askq batch
    try:
        return await batch_status(redis, fields["id"], with_job_ids=False, with_latencies=False)
    except NotFoundError:
        return None  # askq's retention is over


def _ended(fields: dict[str, str]) -> bool:
    return any(fields.get(name) for name in ("failed_at", "completed_at", "cancelled_at"))


async def _finalize(redis: Redis, fields: dict[str, str], status: BatchStatus) -> dict[str, str]:
    """Make the output and error files of a batch whose requests have all ended, and mark it ended.
    One process does it (it claims ``finalizing_at``); others say ``finalizing`` meanwhile."""
    key = keys.openai_batch(fields["id"])
    now = time.time()
    claimed = fields.get("finalizing_at")
    if claimed and now - float(claimed) < STALE_FINALIZE_S:
        return fields  # another request is making the files
    if not claimed and not await redis.hsetnx(key, "finalizing_at", f"{now:.3f}"):  # type: ignore[misc]
        return await _fields(redis, fields["id"])
    ttl_s = max(await redis.ttl(key), 1)
    ended: dict[str, str] = {}
    for kind, size in (await output_sizes(redis, fields["id"])).items():
        if size.lines:
            file_id = openai_files.output_file_id(fields["id"], kind)
            made = openai_files.StoredFile(
                file_id,
                size.size,
                int(now),
                f"{fields['id']}_{kind}.jsonl",
                openai_files.OUTPUT_PURPOSE,
                int(now) + ttl_s,
                batch=fields["id"],
                kind=kind,
            )
            await openai_files.save(redis, made, ttl_s)
            ended["output_file_id" if kind == OUTPUT else "error_file_id"] = file_id
    ended["cancelled_at" if fields.get("cancelling_at") else "completed_at"] = f"{time.time():.3f}"
    await redis.hset(key, mapping=ended)  # type: ignore[misc]
    return {**fields, "finalizing_at": f"{now:.3f}", **ended}


async def cancel(state: ServerState, batch_id: str) -> BatchView:
    """Cancel the batch's queued requests and stop its running ones; 409 for a batch already ended."""
    view = await read_view(state.redis, batch_id)
    status = status_of(view)
    if status not in {"validating", "in_progress", "cancelling"}:
        raise ApiError(409, f"batch {batch_id!r} is {status}: there is nothing to cancel", code="batch_ended")
    await state.redis.hsetnx(keys.openai_batch(batch_id), "cancelling_at", f"{time.time():.3f}")  # type: ignore[misc]
    if view.status is not None:
        await cancel_batch(state.redis, batch_id, state.config)
    return await read_view(state.redis, batch_id)


async def list_page(redis: Redis, after: str | None, limit: int) -> tuple[list[BatchView], bool]:
    """Up to ``limit`` batches newest first, from the one after ``after``; and whether more follow."""
    start = 0
    if after is not None:
        rank = await redis.zrevrank(keys.OPENAI_BATCHES, after)
        if rank is None:
            raise ApiError(400, f"after={after!r}: no such batch", param="after")
        start = rank + 1
    views: list[BatchView] = []
    while len(views) <= limit:  # one more than asked: whether there is a next page
        ids = [raw.decode() for raw in await redis.zrevrange(keys.OPENAI_BATCHES, start, start + limit)]
        if not ids:
            break
        for batch_id in ids:
            try:
                views.append(await read_view(redis, batch_id))
            except ApiError:  # expired: the index has no expiry of its own
                await redis.zrem(keys.OPENAI_BATCHES, batch_id)
                start -= 1
        start += len(ids)
    return views[:limit], len(views) > limit
