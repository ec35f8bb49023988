"""Read a batch's results in input order and write them as JSON lines or OpenAI Batch API output."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from redis.asyncio import Redis

from common import record
from common.sources import Source, parse_sources, sources_json
from common.status import TERMINAL_STATES, JobState
from common.stored_jobs import read_jobs
from common.untrusted import json_line
from producer.batches import job_id_pages

RESULT_FORMATS = ("jsonl", "openai-batch")
_TERMINAL_VALUES = frozenset(state.value for state in TERMINAL_STATES)
_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""``json.dumps(line, ensure_ascii=False)``'s bytes, without a new encoder made for every line."""


@dataclass(frozen=True)
class Result:
    item_id: str
    job_id: str
    question: str
    answer: str | None
    status: str
    error: str | None
    error_code: str | None
    attempts: int
    usage: dict[str, int] | None
    model: str | None
    finish_reason: str | None
    custom_id: str | None
    finished_at: float | None
    sources: list[Source] | None = None
    """The knowledge chunks in the job's prompt, best first; None for a job that retrieved none."""
    first_token_ms: float | None = None
    """The answering attempt's time to its first token; None unless it was answered (and recorded it)."""

    def to_json(self) -> dict[str, Any]:
        line = {
            "id": self.item_id,
            "job_id": self.job_id,
            "question": self.question,
            "answer": self.answer,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
            "usage": self.usage,
            "finish_reason": self.finish_reason,
        }
        if self.sources is not None:  # only a job of a type with knowledge: other lines stay as they were
            line["sources"] = json.loads(sources_json(self.sources))
        return line


def result_from_record(job_id: str, fields: dict[str, str]) -> Result:
    """The one reading of a job's fields (``common.stored_jobs.read_jobs``; empty when it expired)."""
    state = fields.get(record.STATE, "expired")
    finished = state in _TERMINAL_VALUES
    usage = orjson.loads(fields[record.USAGE]) if fields.get(record.USAGE) else None
    return Result(
        item_id=fields.get(record.ITEM_ID, ""),
        job_id=job_id,
        question=fields.get(record.QUESTION, ""),
        answer=fields.get(record.ANSWER) if state == JobState.SUCCEEDED.value else None,
        status=state,
        error=fields.get(record.ERROR) or None,
        error_code=fields.get(record.ERROR_CODE) or None,
        attempts=int(fields.get(record.ATTEMPTS, 0)),
        usage=usage,
        model=fields.get(record.MODEL) or None,
        finish_reason=fields.get(record.FINISH_REASON) or None,
        custom_id=fields.get(record.CUSTOM_ID) or None,
        finished_at=float(fields[record.FINISHED_AT])
        if finished and fields.get(record.FINISHED_AT)
        else None,
        sources=parse_sources(fields[record.SOURCES]) if fields.get(record.SOURCES) else None,
        first_token_ms=float(fields[record.FIRST_TOKEN_MS]) if fields.get(record.FIRST_TOKEN_MS) else None,
    )


async def iter_results(redis: Redis, batch: str) -> AsyncIterator[Result]:
    """Every item of the batch in input order, one pipelined round trip per page."""
    # The next page is read while this one's lines are made and written: Redis and this process
    # work at once, where one after the other each waited for the other (about a third of a download).
    pending: tuple[list[str], asyncio.Future[list[dict[str, str]]]] | None = None
    try:
        # Closed here, not by the loop's finalizer later: a reader gone mid-way leaves nothing running.
        async with contextlib.aclosing(job_id_pages(redis, batch)) as pages:
            async for job_ids in pages:
                previous, pending = pending, (job_ids, asyncio.ensure_future(read_jobs(redis, job_ids)))
                if previous is not None:
                    for result in _page_results(previous[0], await previous[1]):
                        yield result
        if pending is not None:
            for result in _page_results(pending[0], await pending[1]):
                yield result
    finally:
        if pending is not None and not pending[1].done():  # a reader gone mid-way: no read left behind
            pending[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending[1]


def _page_results(job_ids: list[str], records: list[dict[str, str]]) -> list[Result]:
    return [result_from_record(job_id, fields) for job_id, fields in zip(job_ids, records, strict=True)]


def openai_batch_line(result: Result) -> dict[str, Any]:
    """One line of the OpenAI Batch API output file for this result; a knowledge job's sources as an
    extra top-level key, which readers of that format ignore."""
    line = _openai_batch_line(result)
    if result.sources is not None:
        line["sources"] = json.loads(sources_json(result.sources))
    return line


def _openai_batch_line(result: Result) -> dict[str, Any]:
    custom_id = result.custom_id or result.item_id
    line_id = "batch_req_" + hashlib.sha256(result.job_id.encode()).hexdigest()[:24]
    if result.status == JobState.SUCCEEDED.value:
        body = {
            "id": "chatcmpl-" + line_id.removeprefix("batch_req_"),
            "object": "chat.completion",
            "created": int(result.finished_at or 0),
            "model": result.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.answer},
                    "finish_reason": result.finish_reason or "stop",
                }
            ],
            "usage": result.usage,
        }
        response = {"status_code": 200, "request_id": line_id, "body": body}
        return {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    code = result.error_code or result.status
    if code.isdigit():
        error_body = {"error": {"message": result.error, "type": "askq_error", "code": None}}
        response = {"status_code": int(code), "request_id": line_id, "body": error_body}
        return {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    message = result.error or f"not finished: {result.status}"
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


async def write_results(redis: Redis, batch: str, out: TextIO, fmt: str = "jsonl") -> dict[str, int]:
    """Write one line per item; returns the count of lines by status."""
    counts: dict[str, int] = {}
    async for result in iter_results(redis, batch):
        out.write(result_line(result, fmt))
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def result_line(result: Result, fmt: str = "jsonl") -> str:
    """One line of a results file in ``fmt``, newline included: ``askq results`` and the API alike."""
    line = openai_batch_line(result) if fmt == "openai-batch" else result.to_json()
    # C1, bidi and line-separator characters as \u escapes: the same JSON, inert on a terminal.
    return json_line(_ENCODER.encode(line)) + "\n"
