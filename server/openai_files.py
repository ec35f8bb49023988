"""The OpenAI Batch API's files, kept in Redis so that every server process sees them.

A file is a hash (its object) and a list of its content in parts of at most 1 MiB; both expire with
``retention.results_days``. An upload is stored as it is read; a batch's output and error files are
written once, when the batch ends (``server.openai_finalize``), and never change after.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis

from common import keys
from server.errors import ApiError
from server.openai_output import PART_BYTES

UPLOAD_PURPOSE = "batch"
"""The one purpose this server takes: a batch's input file."""
OUTPUT_PURPOSE = "batch_output"


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class StoredFile:
    id: str
    size: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.expires_at,
            "status_details": None,
        }

    def mapping(self) -> dict[str, str | int]:
        return {
            "id": self.id,
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "expires_at": self.expires_at,
        }


def output_file_id(batch_id: str, kind: str) -> str:
    """A batch's output or error file id, derived from the batch: processes that finalise it at once
    name the same file."""
    return f"file-{batch_id}-{kind}"


async def store_upload(redis: Redis, upload: Readable, filename: str, limit: int, ttl_s: int) -> StoredFile:
    """Copy ``upload`` into Redis a part at a time; 413 (and nothing kept) once it passes ``limit``."""
    file_id = f"file-{uuid.uuid4().hex}"
    parts = keys.openai_file_parts(file_id)
    size = 0
    while chunk := await upload.read(PART_BYTES):
        size += len(chunk)
        if size > limit:
            await redis.delete(parts)
            raise ApiError(
                413, f"the file is over {limit:,} bytes, this server's limit", code="request_too_large"
            )
        async with redis.pipeline(transaction=True) as pipe:
            pipe.rpush(parts, chunk)
            pipe.expire(parts, ttl_s)
            await pipe.execute()
    now = int(time.time())
    stored = StoredFile(file_id, size, now, filename, UPLOAD_PURPOSE, now + ttl_s)
    await save(redis, stored, ttl_s)  # last: until now the file did not exist
    return stored


async def save(redis: Redis, stored: StoredFile, ttl_s: int) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.openai_file(stored.id), mapping=stored.mapping())
        pipe.expire(keys.openai_file(stored.id), ttl_s)
        await pipe.execute()


async def read_file(redis: Redis, file_id: str) -> StoredFile:
    """The file's object; a 404 in OpenAI's shape for an unknown (or expired, or deleted) one."""
    raw = await redis.hgetall(keys.openai_file(file_id))  # type: ignore[misc]  # redis-py types sync and async alike
    if not raw:
        raise ApiError(404, f"no file {file_id!r} (unknown, deleted or expired)", kind="not_found_error")
    fields = {name.decode(): value.decode() for name, value in raw.items()}
    return StoredFile(
        id=fields["id"],
        size=int(fields["bytes"]),
        created_at=int(fields["created_at"]),
        filename=fields["filename"],
        purpose=fields["purpose"],
        expires_at=int(fields["expires_at"]),
    )


async def content(redis: Redis, stored: StoredFile) -> AsyncIterator[bytes]:
    """The file's bytes, a part at a time."""
    parts = keys.openai_file_parts(stored.id)
    for index in range(await redis.llen(parts)):  # type: ignore[misc]
        part = await redis.lindex(parts, index)  # type: ignore[misc]
        if part is None:  # deleted or expired while read
            return
        yield part


async def delete_file(redis: Redis, file_id: str) -> bool:
    """Forget the file; False when there was none."""
    removed = await redis.delete(keys.openai_file(file_id), keys.openai_file_parts(file_id))
    return bool(removed)


@asynccontextmanager
async def spooled(redis: Redis, stored: StoredFile, folder: Path | None) -> AsyncIterator[Path]:
    """The file's content in a private temporary file (a submit reads it twice), removed after."""
    descriptor, name = tempfile.mkstemp(prefix="askq-batch-", suffix=".jsonl", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            async for part in content(redis, stored):
                handle.write(part)
        yield path
    finally:
        path.unlink(missing_ok=True)
