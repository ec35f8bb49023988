"""``POST /v1/batches``: an uploaded file checked as ``askq submit --format openai-batch`` checks it,
then enqueued as an askq batch named by the new batch's id. A file with bad lines gives a batch in
status ``failed`` naming each line, with nothing enqueued, as the Batch API does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import structlog

from common import keys
from common.errors import AskqError, InputError
from producer.control import cancel_batch
from producer.submit import submit_file
from producer.submit_report import InvalidLinesError
from server import openai_files
from server import openai_validating as validating
from server.errors import ApiError
from server.openai_batches import CHAT_COMPLETIONS, BatchView, read_view
from server.state import ServerState

log = structlog.get_logger(__name__)

COMPLETION_WINDOW = "24h"
"""The one window OpenAI takes; requests here run as soon as workers take them anyway."""
MAX_METADATA = 16
"""Pairs of metadata a batch takes, as OpenAI: keys up to 64 characters, values up to 512."""


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if len(metadata) > MAX_METADATA:
        raise ApiError(400, f"metadata has {len(metadata)} keys; at most {MAX_METADATA}", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise ApiError(
                400,
                f"metadata[{key[:64]!r}]: keys up to 64 characters, values strings up to 512",
                param="metadata",
            )
    return metadata


async def create_batch(
    state: ServerState,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, Any] | None,
) -> BatchView:
    if endpoint != CHAT_COMPLETIONS:
        raise ApiError(
            400, f"endpoint {endpoint!r}: this server runs {CHAT_COMPLETIONS} batches only", param="endpoint"
        )
    if completion_window != COMPLETION_WINDOW:
        raise ApiError(
            400,
            f"completion_window {completion_window!r}: expected {COMPLETION_WINDOW!r}",
            param="completion_window",
        )
    checked = check_metadata(metadata)
    redis, ttl_s = state.redis, state.config.retention.ttl_s
    stored = await openai_files.read_file(redis, input_file_id)
    if stored.purpose != openai_files.UPLOAD_PURPOSE:
        raise ApiError(400, f"file {input_file_id!r} is not a batch input file", param="input_file_id")
    batch_id = f"batch_{uuid.uuid4().hex}"
    key = keys.openai_batch(batch_id)
    now = time.time()
    fields = {
        "id": batch_id,
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
        "metadata": json.dumps(checked),
        "created_at": f"{now:.3f}",
    }
    lease_s = state.config.limits.lease_s
    async with redis.pipeline(transaction=True) as pipe:  # validating from here on, under the lease
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl_s)
        validating.take_lease(pipe, batch_id, lease_s)
        # Microseconds: batches made within one millisecond still list in the order they were made.
        pipe.zadd(keys.OPENAI_BATCHES, {batch_id: time.time_ns() // 1000})
        await pipe.execute()
    try:
        async with validating.renewing(redis, batch_id, lease_s):
            errors = await _submit(state, stored, batch_id)
    except AskqError as exc:  # not the file's fault (Redis full, a knowledge base not built): said as is
        await _end_unsubmitted(state, batch_id, [_error(str(exc), None, code="server_error")])
        raise
    except BaseException as exc:  # a bug, a raw Redis error, a shutdown: never left validating for good
        await _end_unsubmitted(state, batch_id, [_error(_broken_message(exc), None, code="server_error")])
        raise  # the server's error handler logs the cause
    if errors:
        await _end_unsubmitted(state, batch_id, errors)
    elif not await validating.end_submitted(redis, batch_id):
        # This process outlived its lease (stalled) and a reader failed the batch as interrupted,
        # perhaps cancelling part of it: the rest it enqueued since must not run either.
        await validating.cancel_enqueued(redis, batch_id, state.config)
    elif await redis.hexists(key, "cancelling_at"):  # type: ignore[misc]
        # After in_progress_at is set: a cancel that came while validating either saw it (and cancelled
        # the askq batch itself) or had set cancelling_at before, seen here.
        await cancel_batch(redis, batch_id, state.config)
    return await read_view(redis, batch_id, state.config)


async def _submit(
    state: ServerState, stored: openai_files.StoredFile, batch_id: str
) -> list[dict[str, Any]] | None:
    """Enqueue the file's requests; the errors that stopped it (nothing enqueued), None once enqueued."""
    try:
        async with openai_files.spooled(state.redis, stored, state.settings.spool_dir) as path:
            await submit_file(
                state.redis, path, state.config, batch=batch_id, fmt="openai-batch", name=stored.filename
            )
    except InvalidLinesError as exc:
        problems = sorted(exc.check.problems, key=lambda problem: problem.line)
        errors = [_error(problem.message, problem.line) for problem in problems]
        if exc.check.more_problems:
            errors.append(_error(f"... and {exc.check.more_problems:,} more bad lines", None))
        return errors
    except InputError as exc:  # the file as a whole: not UTF-8, binary, no requests in it
        return [_error(str(exc), None)]
    return None


def _broken_message(exc: BaseException) -> str:
    """What the batch says of a submit that broke: the cause is in the server's log, never told."""
    if isinstance(exc, asyncio.CancelledError):
        return "the server stopped while it enqueued this batch's requests: create the batch again"
    return "the server failed while it enqueued this batch's requests (see the server's log): create it again"


async def _end_unsubmitted(state: ServerState, batch_id: str, errors: list[dict[str, Any]]) -> None:
    """The batch failed, with its errors; cancelled instead (errors kept) if a cancel came while it was
    validating. What a broken submit had enqueued is cancelled: a failed batch runs nothing. Shielded:
    a shutdown's cancellation does not stop these writes too."""
    await asyncio.shield(_end_and_cancel(state, batch_id, errors))


async def _end_and_cancel(state: ServerState, batch_id: str, errors: list[dict[str, Any]]) -> None:
    await validating.end_unsubmitted(state.redis, batch_id, errors)  # unless a reader ended it first
    try:
        await validating.cancel_enqueued(state.redis, batch_id, state.config)
    except Exception:  # Redis full or away: the submit's own error, raised next, is the one to tell
        log.exception("requests of a failed batch not cancelled", batch=batch_id)


def _error(message: str, line: int | None, code: str = "invalid_request") -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}
