"""The OpenAI Batch API (``/v1``): its files, their parts, its batches and their leases."""

from __future__ import annotations

from common.keys.cluster import PREFIX

__all__ = [
    "OPENAI_BATCHES",
    "openai_batch",
    "openai_batch_lease",
    "openai_file",
    "openai_file_draft",
    "openai_file_parts",
]

OPENAI_BATCHES = f"{PREFIX}:openai:batches"
"""Sorted set of the OpenAI Batch API's batch ids by creation time (ms): ``GET /v1/batches`` pages it,
newest first. It has no expiry of its own: a listing drops the ids whose batch expired."""


def openai_file(file_id: str) -> str:
    """Hash of a file of the OpenAI Batch API (``/v1/files``): its id, size, name, purpose, creation and
    expiry times."""
    return f"{PREFIX}:openai:file:{file_id}"


def openai_file_parts(file_id: str) -> str:
    """List of a file's content (an upload, or a batch's output or error file as it was written when the
    batch ended) in parts of at most 1 MiB, in order: any server process reads it, and none holds a
    whole file in one Redis value."""
    return f"{PREFIX}:openai:file:{file_id}:parts"


def openai_file_draft(file_id: str, claim: str) -> str:
    """List of a batch's output or error file's parts while the finalize that claimed it as ``claim``
    writes them; renamed to ``openai_file_parts`` in the transaction that ends the batch, so two
    processes finalizing at once never write one file twice. Expires with the retention."""
    return f"{PREFIX}:openai:file:{file_id}:draft:{claim}"


def openai_batch(batch_id: str) -> str:
    """Hash of what the OpenAI Batch API says of a batch beyond askq's counters: its input file,
    endpoint, metadata, and the times it failed, was cancelled or completed. The askq batch it runs as
    has the batch id for its name."""
    return f"{PREFIX}:openai:batch:{batch_id}"


def openai_batch_lease(batch_id: str) -> str:
    """String held, with a TTL of ``limits.lease_s``, by the server creating the batch while it checks
    and enqueues the input file (renewed every third of that): a batch still validating without it
    had its creator die mid-submit, and the next read fails it (``server.openai_validating``)."""
    return f"{PREFIX}:openai:batch:{batch_id}:lease"
