"""OpenAI Batch API batches on askq batches: create one from an uploaded file, and say its status.

A batch's id is the name of the askq batch it runs as (``batch_`` and 32 hex digits: a valid askq
name), so ``askq status``, ``askq tail`` and the ``/api`` routes watch it too. What the Batch API says
beyond askq's counters (input file, metadata, the times it failed, was cancelled or ended) is a hash
of its own. A batch's status is worked out from askq's counters each time it is read; the first read
that finds every request ended writes its output and error files (``server.openai_finalize``); the
first that finds it validating with its creator gone fails it (``server.openai_validating``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.errors import NotFoundError
from common.status import JobState
from producer.batches import BatchStatus, batch_status
from producer.control import cancel_batch
from server import openai_validating as validating
from server.errors import ApiError
from server.openai_finalize import ENDED, finalize
from server.state import ServerState

CHAT_COMPLETIONS = "/v1/chat/completions"


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
    if fields.get("cancelling_at") and not fields.get("in_progress_at"):
        return "cancelling"  # cancelled while validating: its submit's end cancels it
    if not fields.get("in_progress_at"):
        return "validating"
    if view.status is None:
        return "expired"
    if fields.get("finalizing_at"):
        return "finalizing"
    return "cancelling" if fields.get("cancelling_at") else "in_progress"


async def read_view(redis: Redis, batch_id: str, config: AskqConfig) -> BatchView:
    """The batch's fields and askq status, finalized first if every request has ended, failed first if
    its creator died while validating it; 404 if unknown."""
    fields = await _fields(redis, batch_id)
    validating_now = not fields.get("in_progress_at") and not _ended(fields)
    if validating_now and await validating.end_if_abandoned(redis, batch_id, config):
        fields = await _fields(redis, batch_id)
    status = await _askq_status(redis, fields)
    if status is not None and status.done and not _ended(fields):
        # The retention: how long its files are kept should its key have no TTL.
        await finalize(redis, batch_id, fields.get("finalizing_at"), config.retention.ttl_s)
        fields = await _fields(redis, batch_id)
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
    return any(fields.get(name) for name in ENDED)


async def cancel(state: ServerState, batch_id: str) -> BatchView:
    """Cancel the batch's queued requests and stop its running ones; 409 for a batch already ended."""
    status = status_of(await read_view(state.redis, batch_id, state.config))
    if status not in {"validating", "in_progress", "cancelling"}:
        raise ApiError(409, f"batch {batch_id!r} is {status}: there is nothing to cancel", code="batch_ended")
    await state.redis.hsetnx(keys.openai_batch(batch_id), "cancelling_at", f"{time.time():.3f}")  # type: ignore[misc]
    # Read again after cancelling_at is set: a submit that ended meanwhile is seen here, or it sees
    # cancelling_at and cancels the askq batch itself (server.openai_batch_create).
    if (await read_view(state.redis, batch_id, state.config)).status is not None:
        await cancel_batch(state.redis, batch_id, state.config)
    return await read_view(state.redis, batch_id, state.config)


async def list_page(
    redis: Redis, after: str | None, limit: int, config: AskqConfig
) -> tuple[list[BatchView], bool]:
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
                views.append(await read_view(redis, batch_id, config))
            except ApiError:  # expired: the index has no expiry of its own
                await redis.zrem(keys.OPENAI_BATCHES, batch_id)
                start -= 1
        start += len(ids)
    return views[:limit], len(views) > limit
