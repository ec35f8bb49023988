"""The async bodies of ``askq submit``, ``status``, ``results`` and ``tail``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

from redis.asyncio import Redis
from rich.console import Console

from askq.render import batch_progress, progress_detail, status_table
from common.config import load_config
from common.errors import NotFoundError
from common.events import EventType, StreamEvent
from common.status import JobState
from producer.batches import BatchStatus, batch_status
from producer.connection import connect
from producer.results import write_results
from producer.submit import submit_file
from producer.tail import Finished, Waiting, follow_job

WAIT_POLL_S = 0.25
stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


async def submit(
    path: Path, *, batch: str | None, job_type: str | None, wait: bool, as_json: bool, skip_invalid: bool
) -> int:
    config = load_config()
    async with connect() as redis:
        report = await submit_file(
            redis, path, config, batch=batch, job_type=job_type, skip_invalid=skip_invalid
        )
        if report.problems:
            stderr.print(report.problems, markup=False)
            stderr.print(f"skipped {report.invalid_lines} invalid lines", markup=False)
        if not as_json:
            print(report.batch)
            stderr.print(
                f"{report.items} questions: {report.enqueued} enqueued, "
                f"{report.skipped_existing} already in batch {report.batch}",
                markup=False,
            )
        document: dict[str, object] = {**report.__dict__, "problems": report.problems.splitlines()}
        status = await wait_for_batch(redis, report.batch, show=not as_json) if wait else None
    if as_json:
        # One document for scripts: the submission, and with --wait the final status too.
        print(json.dumps({**document, "status": status.to_json()} if status else document))
    if status is None:
        return 0
    return 0 if status.counts[JobState.FAILED] == 0 else 1


async def wait_for_batch(redis: Redis, batch: str, *, show: bool) -> BatchStatus:
    """Poll the batch's counters until every job has finished, with a progress bar when ``show``."""
    started = time.monotonic()
    status = await batch_status(redis, batch, with_job_ids=False)
    progress = batch_progress(stderr)
    with progress if show else contextlib.nullcontext():
        task = progress.add_task(batch, total=status.total, detail="")
        while True:
            progress.update(
                task, completed=status.finished, total=status.total, detail=progress_detail(status, started)
            )
            if status.done:
                return status
            await asyncio.sleep(WAIT_POLL_S)  # a progress display refresh, not synchronisation
            status = await batch_status(redis, batch, with_job_ids=False)


async def status(batch: str, *, as_json: bool) -> int:
    async with connect() as redis:
        result = await batch_status(redis, batch)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        stdout.print(status_table(result))
    return 0


async def results(batch: str, *, output: Path | None, fmt: str) -> int:
    async with connect() as redis:
        if output is None:
            counts = await write_results(redis, batch, sys.stdout, fmt)
        else:
            with output.open("w", encoding="utf-8") as out:
                counts = await write_results(redis, batch, out, fmt)
    if output is not None:
        summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        stderr.print(f"wrote {sum(counts.values())} lines to {output} ({summary})", markup=False)
    return 0


async def tail(job_id: str, *, as_json: bool, url: str | None = None) -> int:
    """Print a job's text as it streams; exit 0 if it succeeds, 1 if it fails."""
    async with connect(url) as redis:
        async for item in follow_job(redis, job_id):
            if as_json:
                print(json.dumps(_as_json(item), ensure_ascii=False), flush=True)
            else:
                _show(item)
            if isinstance(item, Finished):
                return 0 if item.state is JobState.SUCCEEDED else 1
            if isinstance(item, StreamEvent) and item.type.is_final:
                return 0 if item.type is EventType.DONE else 1
    raise NotFoundError(f"job {job_id!r} ended without a result")  # pragma: no cover


def _as_json(item: StreamEvent | Waiting | Finished) -> object:
    if isinstance(item, StreamEvent):
        return json.loads(item.to_json())
    if isinstance(item, Waiting):
        return {"type": "waiting", "job_id": item.job_id}
    return {
        "type": "finished",
        "job_id": item.job_id,
        "state": item.state.value,
        "answer": item.answer,
        "error": item.error or None,
        "attempts": item.attempts,
        "usage": item.usage.model_dump() if item.usage else None,
    }


def _show(item: StreamEvent | Waiting | Finished) -> None:
    if isinstance(item, Waiting):
        stderr.print(f"[dim]{item.job_id} is queued; waiting for a worker…[/]")
    elif isinstance(item, Finished):
        if item.state is JobState.SUCCEEDED:
            _write(item.answer + "\n")
        else:
            stderr.print(f"[red]failed after {item.attempts} attempts:[/] {item.error}")
    elif item.type is EventType.DELTA:
        _write(item.text or "")
    elif item.type is EventType.RETRY:
        stderr.print(
            f"\n[dim]attempt {item.attempt} failed ({item.error}); retrying in {item.retry_in_s:.1f} s; "
            "any text of that attempt above is discarded[/]"
        )
    elif item.type is EventType.DONE:
        _write("\n")
    elif item.type is EventType.FAILED:
        stderr.print(f"\n[red]failed after {item.attempt} attempts:[/] {item.error}")


def _write(text: str) -> None:
    # Answer text goes out raw: rich would re-wrap it to the terminal width.
    sys.stdout.write(text)
    sys.stdout.flush()
