"""The batch routes' JSON documents, for the OpenAPI docs: each the shape the matching ``askq ... --json``
prints, built by the same producer-side code (``SubmitReport.to_json``, ``BatchStatus.listing_json``)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from producer.lines import FORMATS
from producer.result_lines import RESULT_FORMATS

InputFormat = Literal["jsonl", "txt", "csv", "openai-batch"]
ResultFormat = Literal["jsonl", "openai-batch"]
# Literal types for the OpenAPI docs' enums, kept to the producer's lists:
assert set(get_args(InputFormat)) == set(FORMATS)
assert set(get_args(ResultFormat)) == set(RESULT_FORMATS)


class SubmitResult(BaseModel):
    """``askq submit --json``: what the upload did."""

    batch: str
    items: int = Field(description="questions in the file (its good lines)")
    enqueued: int
    skipped_existing: int = Field(description="already in the batch with the same question: nothing to do")
    invalid_lines: int = Field(description="bad lines skipped (with skip_invalid)")
    problems: list[str] = Field(description="the bad lines, one message each: FILE: line N: what is wrong")
    conflicting: int = Field(description="already in the batch with another question: left as they were")
    conflicting_ids: list[str]


class BatchPage(BaseModel):
    """A page of ``askq batches --json``, newest first; ``?after=last_id`` gives the next page."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]] = Field(description="each as `askq batches --json` lists it")
    first_id: str | None
    last_id: str | None
    has_more: bool


class BatchItem(BaseModel):
    """One item of a batch as its items page lists it: long texts cut (``GET /api/jobs/{job_id}``
    has the whole job)."""

    index: int = Field(description="its place in the batch, from 0, in input order")
    id: str = Field(description="the item's id")
    job_id: str
    state: str = Field(
        description="queued, running, succeeded, failed, cancelled; expired when its record is gone"
    )
    question: str = Field(description="its first 300 characters")
    answer: str | None = Field(description="its first 300 characters; null unless it succeeded")
    error: str | None = Field(description="its first 300 characters")
    attempts: int
    finished_at: float | None = Field(description="Unix time, once ended")


class ItemPage(BaseModel):
    """A page of a batch's items in input order; ``?after=next_after`` gives the next."""

    object: Literal["list"] = "list"
    data: list[BatchItem]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the list's end")
    has_more: bool = Field(description="whether the list goes on past this page (a page may hold none)")
    scanned: int = Field(description="items looked at: a filtered page reads at most 5,000 states")
    total: int = Field(description="items in the batch")


class RetryResult(BaseModel):
    batch: str
    requeued: int = Field(description="failed (and with ?cancelled=true, cancelled) jobs queued again")
    counts: dict[str, int] = Field(description="the batch's jobs by state afterwards")


class CancelResult(BaseModel):
    batch: str
    queued_cancelled: int
    running_aborting: int = Field(description="running jobs whose workers were told to abort them")


class DeleteResult(BaseModel):
    """``askq delete --json``."""

    batch: str
    deleted_jobs: int
    still_running: int = Field(description="jobs whose workers had not let go yet: they record nothing more")


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The question file: a multipart upload (field `file`, its name's extension giving "
        "the format), or the file itself as the body with `?format=`. At most the server's upload limit.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "batch": {"type": "string"},
                        "job": {"type": "string"},
                        "skip_invalid": {"type": "boolean"},
                        "format": {"type": "string", "enum": list(FORMATS)},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
"""The body FastAPI is not told to parse (the route streams it to disk itself), described for /docs."""
