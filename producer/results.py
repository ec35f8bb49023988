"""Read a batch's results in input order: as ``Result``s, or as the lines of a results file (JSON lines
or OpenAI Batch API output, ``producer.result_lines``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from redis.asyncio import Redis

from common import record
from common.sources import Source, parse_sources, sources_json
from common.status import TERMINAL_STATES, JobState
from common.stored_jobs import read_jobs
from producer.batches import job_id_pages
from producer.result_lines import line_status, result_line

_TERMINAL_VALUES = frozenset(state.value for state in TERMINAL_STATES)


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
        """The document of the job's results line (``producer.result_lines`` writes it from the fields)."""
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
    state = line_status(fields)
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
    async with contextlib.aclosing(_field_pages(redis, batch)) as pages:
        async for job_ids, records in pages:
            for job_id, fields in zip(job_ids, records, strict=True):
                yield result_from_record(job_id, fields)


async def line_pages(redis: Redis, batch: str, fmt: str = "jsonl") -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every item's line of a results file in ``fmt``, in input order, a page at a time: its status and
    its line (newline included) each. ``askq results``, the API's download and the Batch API's files."""
    async with contextlib.aclosing(_field_pages(redis, batch)) as pages:
        async for job_ids, records in pages:
            yield [
                (line_status(fields), result_line(job_id, fields, fmt))
                for job_id, fields in zip(job_ids, records, strict=True)
            ]


async def write_results(redis: Redis, batch: str, out: TextIO, fmt: str = "jsonl") -> dict[str, int]:
    """Write one line per item; returns the count of lines by status."""
    counts: Counter[str] = Counter()
    async for page in line_pages(redis, batch, fmt):
        out.write(b"".join(line for _, line in page).decode())
        counts.update(status for status, _ in page)
    return dict(counts)


async def _field_pages(
    redis: Redis, batch: str
) -> AsyncGenerator[tuple[list[str], list[dict[str, str]]], None]:
    """The batch's job ids and their fields (``read_jobs``) in input order, one round trip a page."""
    # The next page is read while this one's lines are made and written: Redis and this process
    # work at once, where one after the other each waited for the other (about a third of a download).
    pending: tuple[list[str], asyncio.Future[list[dict[str, str]]]] | None = None
    try:
        # Closed here, not by the loop's finalizer later: a reader gone mid-way leaves nothing running.
        async with contextlib.aclosing(job_id_pages(redis, batch)) as pages:
            async for job_ids in pages:
                previous, pending = pending, (job_ids, asyncio.ensure_future(read_jobs(redis, job_ids)))
                if previous is not None:
                    yield previous[0], await previous[1]
        if pending is not None:
            yield pending[0], await pending[1]
    finally:
        if pending is not None and not pending[1].done():  # a reader gone mid-way: no read left behind
            pending[1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending[1]
