"""``askq status BATCH:ITEM``: one job as a table, or one JSON document."""

from __future__ import annotations

import json

from rich.table import Table

from askq.terminal import cell
from producer.job_status import job_document
from producer.results import Result


def job_table(job: Result) -> Table:
    table = Table(title=cell(f"job {job.job_id}"), show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("state", job.status)
    table.add_row("attempts", str(job.attempts))
    if job.model:
        table.add_row("model", cell(job.model))
    if job.usage:
        prompt, completion = job.usage.get("prompt_tokens", 0), job.usage.get("completion_tokens", 0)
        tokens = f"{prompt:,} prompt, {completion:,} completion"
        table.add_row("tokens", tokens + (" (estimated)" if job.usage.get("estimated") else ""))
    if job.finish_reason and job.finish_reason != "stop":
        table.add_row("finish reason", cell(job.finish_reason))
    if job.error:
        table.add_row("error", cell(job.error))
    for rank, source in enumerate(job.sources or [], start=1):
        table.add_row(
            "sources" if rank == 1 else "", cell(f"{rank}. {source.file}#{source.chunk} ({source.score:.2f})")
        )
    table.add_row("question", cell(_short(job.question)))
    return table


def job_json(job: Result, retried: list[str] | None = None) -> str:
    return json.dumps(job_document(job, retried), ensure_ascii=False)


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
