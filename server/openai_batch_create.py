"""``POST /v1/batches``: an uploaded file checked as ``askq submit --format openai-batch`` checks it,
then enqueued as an askq batch named by the new batch's id. A file with bad lines gives a batch in
status ``failed`` naming each line, with nothing enqueued, as the Batch API does."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from common import keys
from common.errors import AskqError, InputError
from producer.submit import submit_file
from producer.submit_report import InvalidLinesError
from server import openai_files
from server.errors import ApiError
from server.openai_batches import CHAT_COMPLETIONS, BatchView, read_view
from server.state import ServerState

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
    async with redis.pipeline(transaction=True) as pipe:  # validating from here on
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl_s)
        # Microseconds: batches made within one millisecond still list in the order they were made.
        pipe.zadd(keys.OPENAI_BATCHES, {batch_id: time.time_ns() // 1000})
        await pipe.execute()
    try:
        ended = await _submit(state, stored, batch_id)
    except AskqError as exc:  # not the file's fault (Redis full, a knowledge base not built): said as is
        await redis.hset(key, mapping=_failed([_error(str(exc), None, code="server_error")]))  # type: ignore[misc]
        raise
    await redis.hset(key, mapping=ended)  # type: ignore[misc]
    return await read_view(redis, batch_id)


async def _submit(state: ServerState, stored: openai_files.StoredFile, batch_id: str) -> dict[str, str]:
    """The fields the submit adds: ``in_progress_at``, or ``failed_at`` and the errors."""
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
        return _failed(errors)
    except InputError as exc:  # the file as a whole: not UTF-8, binary, no requests in it
        return _failed([_error(str(exc), None)])
    return {"in_progress_at": f"{time.time():.3f}"}


def _error(message: str, line: int | None, code: str = "invalid_request") -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _failed(errors: list[dict[str, Any]]) -> dict[str, str]:
    return {"failed_at": f"{time.time():.3f}", "errors": json.dumps(errors)}
