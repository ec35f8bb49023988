"""The Batch API, enough of it for a client to use: upload a JSONL file, create a batch, poll it,
download the output file. A batch completes after ``batch_delay_ms``; each line is answered as a
non-streamed chat completion would be; a line that is not a valid request gets a 400 line, and one
whose question carries a ``[sim:...]`` fault gets that fault's status (its first attempt's)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from .answers import make_answer
from .auth import check_api_key
from .chat_request import RequestError, parse_chat_request
from .completion import completion_body
from .errors import error_response
from .faults import ANSWER_KINDS, DirectiveError, find_plan, without_directive
from .state import STATE_KEY, SimState, StoredFile

ENDPOINT = "/v1/chat/completions"


async def upload_file(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    refused = check_api_key(request, state.settings)
    if refused is not None:
        return refused
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField) or purpose != "batch":
        return error_response(400, "expected multipart fields 'file' and purpose='batch'", param="file")
    stored = _store(state, upload.filename or "upload.jsonl", "batch", upload.file.read())
    return web.json_response(stored.to_json())


async def get_file(request: web.Request) -> web.Response:
    stored = request.app[STATE_KEY].files.get(request.match_info["file_id"])
    if stored is None:
        return error_response(404, "No such File object.", param="id")
    return web.json_response(stored.to_json())


async def file_content(request: web.Request) -> web.Response:
    stored = request.app[STATE_KEY].files.get(request.match_info["file_id"])
    if stored is None:
        return error_response(404, "No such File object.", param="id")
    return web.Response(body=stored.content, content_type="application/jsonl")


async def create_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    refused = check_api_key(request, state.settings)
    if refused is not None:
        return refused
    body = json.loads(await request.read())
    source = state.files.get(body.get("input_file_id", ""))
    if source is None:
        return error_response(400, "input_file_id names no uploaded file", param="input_file_id")
    if body.get("endpoint") != ENDPOINT:
        return error_response(400, f"only {ENDPOINT} is simulated", param="endpoint")
    batch_id = "batch_" + uuid.uuid4().hex[:24]
    lines = [line for line in source.content.decode("utf-8").splitlines() if line.strip()]
    state.batches[batch_id] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "input_file_id": source.id,
        "completion_window": body.get("completion_window", "24h"),
        "status": "in_progress",
        "created_at": int(time.time()),
        "in_progress_at": int(time.time()),
        "output_file_id": None,
        "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
    }
    state.stats.batches_created += 1
    # The task is kept in the batch's entry until it ends: an unreferenced task may be collected.
    state.batch_tasks[batch_id] = asyncio.create_task(_complete(state, batch_id, lines))
    return web.json_response(state.batches[batch_id])


async def get_batch(request: web.Request) -> web.Response:
    batch = request.app[STATE_KEY].batches.get(request.match_info["batch_id"])
    if batch is None:
        return error_response(404, "No such batch.", param="batch_id")
    return web.json_response(batch)


async def _complete(state: SimState, batch_id: str, lines: list[str]) -> None:
    await asyncio.sleep(state.settings.batch_delay_ms / 1000)  # the batch's simulated processing time
    batch = state.batches[batch_id]
    outputs = [_answer_line(state, line) for line in lines]
    ok = sum(1 for line in outputs if line["response"]["status_code"] == 200)
    batch["request_counts"] = {"total": len(lines), "completed": ok, "failed": len(lines) - ok}
    content = "".join(json.dumps(line) + "\n" for line in outputs).encode()
    batch["output_file_id"] = _store(state, f"{batch_id}_output.jsonl", "batch_output", content).id
    batch["status"] = "completed"
    batch["completed_at"] = int(time.time())
    state.batch_tasks.pop(batch_id, None)


def _answer_line(state: SimState, line: str) -> dict[str, Any]:
    state.stats.batch_requests += 1
    custom_id = None
    try:
        entry = json.loads(line)
        custom_id = entry.get("custom_id")
        chat = parse_chat_request(entry.get("body"))
    except (ValueError, AttributeError) as exc:
        message = exc.message if isinstance(exc, RequestError) else "invalid request line"
        return _line(custom_id, 400, {"error": {"message": message, "type": "invalid_request_error"}})
    failed = _simulated_failure(chat.key)
    if failed is not None:
        message = f"simulated {failed} for this line ([sim:...] in the request)"
        return _line(custom_id, failed, {"error": {"message": message, "type": "server_error"}})
    echo = without_directive(chat.key) if _asks_echo(chat.key) else None
    answer = make_answer(chat.model, chat.messages, state.settings.answer_tokens, chat.max_tokens, echo=echo)
    if state.settings.record_requests:
        state.recorded.append(chat.recorded("".join(answer.tokens)))
    return _line(custom_id, 200, completion_body(answer, chat.model, answer.finish_reason))


def _simulated_failure(key: str) -> int | None:
    """The status a ``[sim:...]`` directive asks of a line's first attempt (a fault that has no form
    inside a batch, such as a cut stream, is a 500); None for an answer."""
    try:
        plan = find_plan(key)
    except DirectiveError:
        return None
    kind = plan.for_attempt(1).kind if plan is not None else "ok"
    if kind in ANSWER_KINDS:
        return None
    return int(kind) if kind.isdigit() else 400 if kind == "echo-error" else 500


def _asks_echo(key: str) -> bool:
    try:
        plan = find_plan(key)
    except DirectiveError:
        return False
    return plan is not None and plan.for_attempt(1).kind == "echo"


def _line(custom_id: str | None, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "batch_req_" + uuid.uuid4().hex[:24],
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": uuid.uuid4().hex, "body": body},
        "error": None,
    }


def _store(state: SimState, filename: str, purpose: str, content: bytes) -> StoredFile:
    stored = StoredFile("file-" + uuid.uuid4().hex[:24], filename, purpose, content, int(time.time()))
    state.files[stored.id] = stored
    return stored
