"""An uploaded question file, streamed to a private temporary file as it arrives.

Memory stays flat whatever the size: each chunk goes to disk, or through a streaming multipart
parser to disk. The bytes are counted as they come, since a chunked body declares no length the
413 middleware could check, and the file is removed when the request ends, however it ends.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, BinaryIO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from server.errors import ApiError

if TYPE_CHECKING:  # a type python-multipart defines for checkers only
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
FORM_FIELDS = ("batch", "job", "skip_invalid", "format")
MAX_FIELD_BYTES = 1024
"""A form field other than the file is a name or a flag: a larger one is refused, never buffered."""
MAX_NAME_CHARS = 200


@dataclass
class Upload:
    path: Path
    """The spooled body (raw) or the multipart's file part."""
    name: str | None = None
    """The file part's file name, without folders ('' if it sent none); None for a raw body."""
    fields: dict[str, str] = field(default_factory=dict)
    """The multipart's other fields (``FORM_FIELDS``)."""


@asynccontextmanager
async def spooled_upload(
    request: Request, *, limit: int, spool_dir: Path | None, on_file: Callable[[Upload], None]
) -> AsyncIterator[Upload]:
    """The request's body on disk; ``on_file(upload)`` runs as soon as a multipart's file part names
    itself (the fields before it read), before its data is, so a file askq cannot read is refused early."""
    descriptor, spooled = tempfile.mkstemp(prefix="askq-upload-", dir=spool_dir)  # owner-only
    upload = Upload(Path(spooled))
    try:
        with os.fdopen(descriptor, "wb") as handle:
            content_type = request.headers.get("content-type", "")
            if content_type.lower().startswith("multipart/form-data"):
                await _multipart(_counted(request, limit), content_type, handle, upload, on_file)
            else:
                async for chunk in _counted(request, limit):
                    handle.write(chunk)
        yield upload
    finally:
        upload.path.unlink(missing_ok=True)


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"the body is over {limit:,} bytes, the most this server takes", code="request_too_large"
    )


async def _counted(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            yield chunk
    except ClientDisconnect:
        raise ApiError(400, "the client went away before the upload ended") from None


async def _multipart(
    chunks: AsyncIterator[bytes],
    content_type: str,
    handle: BinaryIO,
    upload: Upload,
    on_file: Callable[[Upload], None],
) -> None:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(422, "multipart/form-data without a boundary in its Content-Type")
    parts = _Parts(handle, upload, on_file)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(422, f"not a well-formed multipart body ({exc})") from None
    if not parts.ended:
        raise ApiError(422, "the multipart body ended before its closing boundary")
    if upload.name is None:
        raise ApiError(
            422, f"no question file: send it as the multipart field {FILE_FIELD!r}", param=FILE_FIELD
        )


class _Parts:
    """python-multipart's callbacks: the file part's data to disk, a short field's to memory."""

    def __init__(self, handle: BinaryIO, upload: Upload, on_file: Callable[[Upload], None]) -> None:
        self.handle, self.upload, self.on_file = handle, upload, on_file
        self.ended = False
        self._headers: dict[str, str] = {}
        self._header_name = self._header_value = b""
        self._field: str | None = None  # the form field being read; None while the file part is
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._all_ended,
        }

    def _begin(self) -> None:
        self._headers, self._value, self._field = {}, bytearray(), None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name, value = self._header_name.decode("latin-1").lower(), self._header_value.decode("latin-1")
        self._headers[name] = value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name == FILE_FIELD:
            if self.upload.name is not None:
                raise ApiError(422, "one question file per upload", param=FILE_FIELD)
            # Untrusted: only its last part, for messages, the batch's source and its default name.
            sent = (filename or b"").decode("utf-8", "replace").replace("\\", "/")
            shown = PurePath(sent).name[:MAX_NAME_CHARS]
            self.upload.name, self._field = shown, None
            self.on_file(self.upload)  # refuses a file askq cannot read, before its data is taken
        elif name in FORM_FIELDS:
            self._field = name
        else:
            expected = ", ".join([FILE_FIELD, *FORM_FIELDS])
            raise ApiError(422, f"unknown form field {name!r}; expected {expected}", param=name)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._field is None:
            self.handle.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise ApiError(
                422, f"form field {self._field!r} is over {MAX_FIELD_BYTES} bytes", param=self._field
            )

    def _end(self) -> None:
        if self._field is not None:
            try:
                self.upload.fields[self._field] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(
                    422, f"form field {self._field!r} is not UTF-8 text", param=self._field
                ) from None
        self._field = None

    def _all_ended(self) -> None:
        self.ended = True
