"""``/v1/batches``: the OpenAI Batch API (create, retrieve, list, cancel) on askq batches, for the
stock ``openai`` client."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from server import openai_batches
from server.errors import ApiError
from server.openai_batch_create import create_batch
from server.state import server_state

router = APIRouter(prefix="/v1/batches", tags=["openai"])

MAX_PAGE = 100


class BatchRequest(BaseModel):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None = None
    output_expires_after: dict[str, Any] | None = None
    """Taken and ignored: output files live as long as the batch, ``retention.results_days``."""


@router.post("")
async def create(body: BatchRequest, request: Request) -> dict[str, Any]:
    """Check the input file and enqueue its requests; a file with bad lines gives a ``failed`` batch."""
    view = await create_batch(
        server_state(request), body.input_file_id, body.endpoint, body.completion_window, body.metadata
    )
    return openai_batches.batch_object(view)


@router.get("")
async def list_batches(request: Request, after: str | None = None, limit: int = 20) -> dict[str, Any]:
    """Batches newest first, ``limit`` (1-100) a page, from the one after ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit={limit}: expected 1 to {MAX_PAGE}", param="limit")
    state = server_state(request)
    views, more = await openai_batches.list_page(state.redis, after, limit, state.config)
    data = [openai_batches.batch_object(view) for view in views]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/{batch_id}")
async def retrieve(batch_id: str, request: Request) -> dict[str, Any]:
    """The batch: status, request counts, output and error files once it has ended."""
    state = server_state(request)
    view = await openai_batches.read_view(state.redis, batch_id, state.config)
    return openai_batches.batch_object(view)


@router.post("/{batch_id}/cancel")
async def cancel(batch_id: str, request: Request) -> dict[str, Any]:
    """Cancel its queued requests, stop its running ones: cancelling, then cancelled."""
    return openai_batches.batch_object(await openai_batches.cancel(server_state(request), batch_id))
