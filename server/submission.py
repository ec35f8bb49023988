"""``POST /api/batches``: the upload's options and format, then ``submit_file`` as ``askq submit`` runs it.

What the query settles (the batch name, the job type and its knowledge base, a raw body's format) is
checked before a byte of the body is read: a typo costs no upload.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePath

from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import InputError, NotFoundError
from common.knowledge_store import usable_meta
from producer.lines import FORMATS
from producer.readers import SUFFIX_FORMATS
from producer.submit import submit_file
from producer.submit_report import SKIP_INVALID_HINT, InvalidLinesError, SubmitReport, check_batch_name
from server.errors import ApiError, error_response
from server.uploads import Upload

RAW_NAME = "<upload>"
"""A raw body's name in messages; its default batch is ``upload-`` and its content hash."""
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class SubmitOptions:
    """``askq submit``'s options: from the query, a multipart's fields over them."""

    fmt: str | None = None
    batch: str | None = None
    job: str | None = None
    skip_invalid: bool = False

    def merged(self, fields: dict[str, str]) -> SubmitOptions:
        options = replace(
            self,
            fmt=fields.get("format") or self.fmt,
            batch=fields.get("batch") or self.batch,
            job=fields.get("job") or self.job,
        )
        if "skip_invalid" in fields:
            options = replace(options, skip_invalid=_flag(fields["skip_invalid"]))
        if options.fmt is not None and options.fmt not in FORMATS:
            raise ApiError(422, f"format {options.fmt!r}: expected {'|'.join(FORMATS)}", param="format")
        return options


async def check_before_upload(redis: Redis, config: AskqConfig, options: SubmitOptions, *, raw: bool) -> None:
    if raw and options.fmt is None:
        raise ApiError(
            422,
            f"a raw body needs ?format={'|'.join(FORMATS)} (or upload the file as multipart, its name "
            "giving the format)",
            param="format",
        )
    await check_options(redis, config, options)


async def check_options(redis: Redis, config: AskqConfig, options: SubmitOptions) -> None:
    """The batch name and the job type, its knowledge base built for its model: ``submit_file``'s
    own checks, named by their parameter."""
    if options.batch is not None:
        try:
            check_batch_name(options.batch)
        except InputError as exc:
            raise ApiError(422, str(exc), param="batch") from None
    job = options.job or config.default_job_type
    try:
        base = config.job_type(job).knowledge
    except NotFoundError as exc:
        raise ApiError(422, str(exc), param="job") from None
    if base is not None:  # KnowledgeError (409): not built, or built for another model
        await usable_meta(redis, base, config.knowledge[base])


def file_format(name: str, fmt: str | None) -> str:
    """``fmt``, else the format the file name's extension says; 422 when it says none askq reads."""
    if fmt is not None:
        return fmt
    suffix = PurePath(name).suffix
    found = SUFFIX_FORMATS.get(suffix.lower())
    if found is None:
        raise ApiError(
            422,
            f"{name or 'the file'}: unknown file type {suffix or '(none)'!r}; askq reads "
            f"{', '.join(sorted(SUFFIX_FORMATS))} (or say ?format={'|'.join(FORMATS)})",
            param="format",
        )
    return found


async def submit_upload(
    redis: Redis, config: AskqConfig, upload: Upload, options: SubmitOptions
) -> SubmitReport | JSONResponse:
    """The report, or a 422 listing the file's bad lines (nothing enqueued)."""
    name = upload.name or RAW_NAME
    try:
        return await submit_file(
            redis,
            upload.path,
            config,
            batch=options.batch,
            job_type=options.job,
            skip_invalid=options.skip_invalid,
            fmt=file_format(name, options.fmt),
            name=name,
        )
    except InvalidLinesError as exc:
        advice = exc.advice.replace(SKIP_INVALID_HINT, "skip_invalid=true enqueues the good lines")
        return error_response(
            422, "\n".join([*exc.problems, advice]), code="invalid_lines", extra={"problems": exc.problems}
        )


def _flag(value: str) -> bool:
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ApiError(422, f"skip_invalid {value!r}: expected true or false", param="skip_invalid")
