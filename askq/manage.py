"""``askq batches`` and ``askq delete``: what is kept in Redis, and removing it."""

from __future__ import annotations

import json
import sys
import time

from rich.table import Table

from askq.render import page_progress
from askq.terminal import cell, make_console
from common.config import load_config
from common.errors import InputError
from common.status import JobState
from common.wording import counted
from producer.batches import BatchStatus, batch_status, recent_batches
from producer.connection import connect
from producer.deletion import delete_batch

stdout = make_console()
stderr = make_console(stderr=True)


async def batches(*, limit: int, as_json: bool) -> int:
    async with connect() as redis:
        found = await recent_batches(redis, limit)
    if as_json:
        print(json.dumps([status.listing_json() for status in found]))
    elif not found:
        stderr.print("no batches (none submitted, or all expired after the retention)", markup=False)
    else:
        stdout.print(batches_table(found, now=time.time()))
    return 0


def batches_table(found: list[BatchStatus], *, now: float) -> Table:
    table = Table(title="batches, newest first", title_justify="left")
    for column in ("batch", "age", "total", "succeeded", "failed", "queued", "running", "cancelled"):
        table.add_column(column, justify="left" if column == "batch" else "right")
    for status in found:
        counts = [str(status.counts[state]) for state in _SHOWN_STATES]
        table.add_row(cell(status.batch), age(now - status.created_at), str(status.total), *counts)
    return table


_SHOWN_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED)


def age(seconds: float) -> str:
    """A short age: 42s, 17m, 5h, 3d."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


async def delete(batch: str, *, yes: bool, as_json: bool) -> int:
    config = load_config()
    async with connect() as redis:
        if not yes:
            await batch_status(redis, batch, with_job_ids=False, with_latencies=False)  # a typo: no question
            _confirm(batch)
        with page_progress(stderr, f"deleting {batch}", show=not as_json) as advance:
            report = await delete_batch(redis, batch, config, on_progress=advance)
    if as_json:
        print(json.dumps(report.to_json()))
        return 0
    stderr.print(
        f"deleted batch {batch}: {counted(report.jobs, 'job')}, their results and events", markup=False
    )
    if report.still_running:
        stderr.print(
            f"{counted(report.still_running, 'job')} had not stopped yet; their workers record nothing more",
            markup=False,
        )
    return 0


def _confirm(batch: str) -> None:
    if not sys.stdin.isatty():
        raise InputError(f"askq delete {batch}: add --yes to delete without a question (no terminal to ask)")
    # The question goes to stderr, as every notice does: stdout stays for what scripts read.
    print(
        f"Delete batch {batch!r}: every job, answer and event of it? Type the batch name: ",
        end="",
        file=sys.stderr,
    )
    answer = sys.stdin.readline()
    if answer.strip() != batch:
        raise InputError(f"not deleted: {answer.strip()!r} is not {batch!r}")
