"""``/v1/files``: the OpenAI Files API as far as the Batch API needs it (upload, retrieve, content,
delete), for the stock ``openai`` client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from server import openai_files
from server.errors import ApiError
from server.state import RedisDep, server_state

router = APIRouter(prefix="/v1/files", tags=["openai"])


@router.post("")
async def create_file(
    request: Request,
    redis: RedisDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
) -> dict[str, Any]:
    """Upload a batch's input file (``purpose=batch``); 413 past the upload limit."""
    if purpose != openai_files.UPLOAD_PURPOSE:
        raise ApiError(
            400,
            f"purpose {purpose!r}: this server takes files for batches only (purpose=batch)",
            param="purpose",
        )
    state = server_state(request)
    stored = await openai_files.store_upload(
        redis,
        file,
        file.filename or "upload.jsonl",
        state.settings.upload_limit_bytes,
        state.config.retention.ttl_s,
    )
    return stored.to_json()


@router.get("/{file_id}")
async def retrieve_file(file_id: str, redis: RedisDep) -> dict[str, Any]:
    """The file's object: size, name, purpose, creation and expiry times."""
    return (await openai_files.read_file(redis, file_id)).to_json()


@router.get("/{file_id}/content")
async def file_content(file_id: str, redis: RedisDep) -> StreamingResponse:
    """The file's bytes: an upload as it was sent, an output or error file as JSON lines."""
    stored = await openai_files.read_file(redis, file_id)  # a 404 before the response starts
    return StreamingResponse(openai_files.content(redis, stored), media_type="application/octet-stream")


@router.delete("/{file_id}")
async def delete_file(file_id: str, redis: RedisDep) -> dict[str, Any]:
    """Forget the file; 404 for one not kept."""
    if not await openai_files.delete_file(redis, file_id):
        raise ApiError(404, f"no file {file_id!r} (unknown, deleted or expired)", kind="not_found_error")
    return {"id": file_id, "object": "file", "deleted": True}
