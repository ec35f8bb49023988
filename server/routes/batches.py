"""``/api/batches``: submit a question file, list batches, and per batch its status, results, retry,
cancel and delete; each answers what the matching ``askq ... --json`` prints, from the same code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from redis.asyncio import Redis

from common.status import JobState
from producer.batch_items import item_page
from producer.batches import batch_status, recent_batches, status_document
from producer.control import cancel_batch
from producer.deletion import delete_batch
from producer.results import line_pages
from producer.retry import retry_batch
from server.batch_models import (
    UPLOAD_BODY,
    BatchPage,
    CancelResult,
    DeleteResult,
    InputFormat,
    ItemPage,
    ResultFormat,
    RetryResult,
    SubmitResult,
)
from server.state import RedisDep, ServerState, server_state
from server.submission import SubmitOptions, check_before_upload, check_options, file_format, submit_upload
from server.uploads import Upload, spooled_upload

router = APIRouter(prefix="/api/batches", tags=["batches"])
StateDep = Annotated[ServerState, Depends(server_state)]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "no such batch (the error names it)"}}


@router.post(
    "",
    status_code=201,
    response_model=SubmitResult,
    openapi_extra=UPLOAD_BODY,
    responses={
        409: {"description": "the job type's knowledge base cannot answer (not built)"},
        413: {"description": "the body is over the upload limit"},
        422: {"description": "a bad file (`error.problems` lists its bad lines) or parameter"},
    },
)
async def submit_batch(
    request: Request,
    state: StateDep,
    fmt: Annotated[InputFormat | None, Query(alias="format")] = None,
    batch: str | None = None,
    job: str | None = None,
    skip_invalid: bool = False,
) -> Any:
    """Check every line of the file, then enqueue one job per question, as `askq submit` does:
    nothing is enqueued while a line is bad (unless skip_invalid)."""
    options = SubmitOptions(fmt, batch, job, skip_invalid)
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    await check_before_upload(state.redis, state.config, options, raw=not multipart)

    def on_file(upload: Upload) -> None:
        file_format(upload.name or "", options.merged(upload.fields).fmt)

    settings = state.settings
    async with spooled_upload(
        request, limit=settings.upload_limit_bytes, spool_dir=settings.spool_dir, on_file=on_file
    ) as upload:
        merged = options.merged(upload.fields)
        if merged != options:  # the multipart's own fields: checked now they are known
            await check_options(state.redis, state.config, merged)
        report = await submit_upload(state.redis, state.config, upload, merged)
    return report if isinstance(report, JSONResponse) else report.to_json()


@router.get("", response_model=BatchPage)
async def list_batches(
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after: Annotated[str | None, Query(description="the last batch of the previous page")] = None,
) -> dict[str, Any]:
    """The batches still kept, newest first, as `askq batches --json` lists them, a page at a time."""
    found = await recent_batches(redis, limit + 1, after=after)
    data = [status.listing_json() for status in found[:limit]]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["batch"] if data else None,
        "last_id": data[-1]["batch"] if data else None,
        "has_more": len(found) > limit,
    }


@router.get("/{batch}", responses=_UNKNOWN)
async def get_batch(batch: str, redis: RedisDep) -> dict[str, Any]:
    """The batch's counts, tokens, latency and first job ids: `askq status BATCH --json`."""
    return await status_document(redis, batch)


@router.get("/{batch}/items", response_model=ItemPage, responses=_UNKNOWN)
async def get_items(
    batch: str,
    redis: RedisDep,
    state: Annotated[JobState | None, Query(description="only the items in this state")] = None,
    after: Annotated[int | None, Query(ge=0, description="the previous page's `next_after`")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The batch's items in input order, a page at a time; with `state`, only those in it. A filtered
    page looks at 5,000 items at most: it may come back short, or empty, with `has_more` (go on from
    `next_after`), so a page of a batch of millions is as quick as one of a few."""
    page = await item_page(redis, batch, state=state, after=after, limit=limit)
    return {
        "object": "list",
        "data": page.items,
        "next_after": page.next_after,
        "has_more": page.next_after is not None,
        "scanned": page.scanned,
        "total": page.total,
    }


@router.get(
    "/{batch}/results",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **_UNKNOWN},
)
async def get_results(
    batch: str, redis: RedisDep, fmt: Annotated[ResultFormat, Query(alias="format")] = "jsonl"
) -> StreamingResponse:
    """One JSON line per item in input order, the bytes `askq results` writes, streamed a page at a time."""
    await batch_status(redis, batch, with_job_ids=False, with_latencies=False)  # 404 before the stream starts
    return StreamingResponse(_result_pages(redis, batch, fmt), media_type="application/x-ndjson")


async def _result_pages(redis: Redis, batch: str, fmt: str) -> AsyncIterator[bytes]:
    async for page in line_pages(redis, batch, fmt):  # one write per page read: memory stays flat
        yield b"".join(line for _, line in page)


@router.post("/{batch}/retry", response_model=RetryResult, responses=_UNKNOWN)
async def retry(batch: str, state: StateDep, cancelled: bool = False) -> dict[str, Any]:
    """Queue the batch's failed jobs again (and cancelled ones with ?cancelled=true), as `askq retry`."""
    moved = await retry_batch(state.redis, batch, state.config, include_cancelled=cancelled)
    left = await batch_status(state.redis, batch, with_job_ids=False, with_latencies=False)
    return {"batch": batch, "requeued": moved, "counts": {s.value: n for s, n in left.counts.items()}}


@router.post("/{batch}/cancel", response_model=CancelResult, responses=_UNKNOWN)
async def cancel(batch: str, state: StateDep) -> dict[str, object]:
    """Cancel the batch's queued jobs and tell workers to abort its running ones, as `askq cancel`."""
    return (await cancel_batch(state.redis, batch, state.config)).to_json()


@router.delete("/{batch}", response_model=DeleteResult, responses=_UNKNOWN)
async def delete(batch: str, state: StateDep) -> dict[str, object]:
    """Delete every job, answer and event of the batch: `askq delete BATCH --yes --json`."""
    return (await delete_batch(state.redis, batch, state.config)).to_json()
