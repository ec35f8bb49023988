"""The async bodies of ``askq submit``, ``status``, ``results``, ``retry`` and ``cancel``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from askq.job_status_view import job_json, job_table
from askq.render import (
    batch_progress,
    error_json,
    history_lines,
    page_progress,
    progress_detail,
    schedules_table,
    status_table,
)
from askq.submit_view import conflict_line, submit_bar, summary_lines
from askq.terminal import json_line, make_console, visible
from common.config import load_config
from common.files import check_writable, replaced_atomically
from common.provider_state import provider_states
from common.reconnect import CONNECTION_ERRORS, Backoff
from common.redis_health import check_memory_policy
from common.status import JobState
from common.wording import counted
from producer.batches import (
    SHOWN_JOB_IDS,
    BatchStatus,
    batch_status,
    halt_reason,
    job_id_pages,
    status_document,
)
from producer.connection import connect
from producer.control import cancel_batch
from producer.job_status import is_job_id, job_record, retried_reasons
from producer.reconnect import GIVE_UP_S
from producer.results import write_results
from producer.retry import retry_batch
from producer.schedules import request_run, run_history, schedule_rows, schedules_served
from producer.spool import question_file
from producer.submit import submit_file

WAIT_POLL_S = 0.25
stdout = make_console()
stderr = make_console(stderr=True)


async def submit(
    path: Path,
    *,
    batch: str | None,
    job_type: str | None,
    wait: bool,
    as_json: bool,
    skip_invalid: bool,
    fmt: str | None = None,
) -> int:
    """Exit 1 when items already in the batch hold another question or request (kept, reported), or
    when --wait sees a job fail."""
    config = load_config(check_files=True)  # the one command whose load refuses a base's missing files
    async with connect() as redis:
        warning = await check_memory_policy(redis)  # an evicting Redis is refused before anything
        if warning is not None:
            stderr.print(f"askq: warning: {warning}", markup=False, soft_wrap=True)
        # Standard input is spooled to a file both passes read, removed once the jobs are written.
        with question_file(path, fmt) as (file, name), submit_bar(stderr, show=not as_json) as progress:
            report = await submit_file(
                redis,
                file,
                config,
                batch=batch,
                job_type=job_type,
                skip_invalid=skip_invalid,
                fmt=fmt,
                name=name,
                progress=progress,
            )
        if not as_json:  # with --json, the one document below says all of it
            if report.problems:
                stderr.print(visible(report.problems), markup=False)
                stderr.print(f"skipped {counted(report.invalid_lines, 'invalid line')}", markup=False)
            print(report.batch)
            for line in summary_lines(report):
                stderr.print(line, markup=False, soft_wrap=True)  # one line each, for grep and scripts
        document = report.to_json()
        status = await wait_for_batch(redis, report.batch, show=not as_json) if wait else None
    if as_json:
        # One document for scripts: the submission, and with --wait the final status too.
        print(json.dumps({**document, "status": status.to_json()} if status else document))
    if report.conflicting:
        if as_json:  # the document lists them; stderr says why the exit status is 1, as JSON
            print(error_json("ConflictingItems", conflict_line(report)), file=sys.stderr)
        return 1
    return 0 if status is None or status.all_succeeded else 1


async def wait_for_batch(redis: Redis, batch: str, *, show: bool) -> BatchStatus:
    """Poll the batch's counters until every job has finished, with a progress bar when ``show``.

    A dropped connection (Redis restarting) is waited out, as ``askq tail`` does, for up to
    ``GIVE_UP_S``; the finished batch's status is read once more with its latency percentiles.
    """
    started = time.monotonic()
    backoff = Backoff(give_up_s=GIVE_UP_S)
    status = await _counters(redis, batch, backoff, show=show)
    finished_before = status.finished
    progress = batch_progress(stderr)
    with progress if show else contextlib.nullcontext():
        task = progress.add_task(batch, total=status.total, detail="")
        while True:
            progress.update(
                task,
                completed=status.finished,
                total=status.total,
                detail=progress_detail(status, started, finished_before),
            )
            if status.done:
                return await batch_status(redis, batch, with_job_ids=False)
            await asyncio.sleep(WAIT_POLL_S)  # a progress display refresh, not synchronisation
            status = await _counters(redis, batch, backoff, show=show)


async def _counters(redis: Redis, batch: str, backoff: Backoff, *, show: bool) -> BatchStatus:
    """The batch's counters (no latencies: cheap enough to poll), riding out a dropped connection."""
    while True:
        try:
            status = await batch_status(redis, batch, with_job_ids=False, with_latencies=False)
        except CONNECTION_ERRORS as exc:
            notice = backoff.failed(exc)  # RedisUnavailableError once GIVE_UP_S have gone by
            if show:
                stderr.print(
                    f"lost the Redis connection ({visible(notice.error)}); "
                    f"reconnecting in {notice.retry_in_s:.1f} s",
                    markup=False,
                )
            await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
            continue
        backoff.succeeded()
        return status


async def status(batch: str, *, as_json: bool, ids: bool = False) -> int:
    """The batch's counters and its first job ids (a batch may have millions); with ``ids``, every id.
    A job's id (``BATCH:ITEM``) in place of the batch: that job alone."""
    async with connect() as redis:
        if is_job_id(batch) and not ids:
            job, fields = await job_record(redis, batch)
            if as_json:
                print(job_json(job, retried_reasons(fields)))
            else:
                stdout.print(job_table(job))
            return 0
        if ids:
            await _print_job_ids(redis, batch, as_json=as_json)
            return 0
        if as_json:
            print(json.dumps(await status_document(redis, batch)))
            return 0
        result = await batch_status(redis, batch, job_id_limit=SHOWN_JOB_IDS)
        providers = await provider_states(redis)
        halt = await halt_reason(redis, batch)
    stdout.print(status_table(result, providers, halt))
    return 0


async def _print_job_ids(redis: Redis, batch: str, *, as_json: bool) -> None:
    """One id a line in input order, written a page at a time: constant memory, whatever the batch."""
    async for page in job_id_pages(redis, batch):
        if as_json:  # exact: a JSON string decodes to the id, whatever it holds
            lines = [json_line(json.dumps(job_id, ensure_ascii=False)) for job_id in page]
        else:  # an id may hold bidi controls (they pass submit's checks): shown, never obeyed
            lines = [visible(job_id) for job_id in page]
        sys.stdout.write("\n".join(lines) + "\n")


async def results(batch: str, *, output: Path | None, fmt: str) -> int:
    if output is not None:
        check_writable(output)  # before Redis: a typo in the path costs no round trip
    async with connect() as redis:
        await batch_status(redis, batch, with_job_ids=False, with_latencies=False)  # unknown: no file
        if output is None:
            counts = await write_results(redis, batch, sys.stdout, fmt)
        else:
            with replaced_atomically(output) as out:
                counts = await write_results(redis, batch, out, fmt)
    if output is not None:
        summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        stderr.print(f"wrote {counted(sum(counts.values()), 'line')} to {output} ({summary})", markup=False)
    return 0


async def retry(batch: str, *, include_cancelled: bool) -> int:
    config = load_config()
    async with connect() as redis:
        moved = await retry_batch(redis, batch, config, include_cancelled=include_cancelled)
        left = (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).counts
    what = "failed or cancelled" if include_cancelled else "failed"
    stderr.print(f"{counted(moved, what + ' job')} of batch {batch} queued again", markup=False)
    cancelled = left[JobState.CANCELLED]
    if cancelled and not include_cancelled:
        stderr.print(
            f"{counted(cancelled, 'job')} {'is' if cancelled == 1 else 'are'} cancelled: "
            f"`askq retry {batch} --cancelled` runs them again",
            markup=False,
        )
    elif cancelled:
        # Runs still stopping after the wait (their worker stuck): say so rather than leave them silently.
        stderr.print(
            f"{counted(cancelled, 'job')} still cancelled: their runs had not stopped; retry again shortly",
            markup=False,
        )
    return 0


async def cancel(batch: str) -> int:
    config = load_config()
    async with connect() as redis:
        total = (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).total
        with page_progress(stderr, f"cancelling {batch}", show=True) as advance:
            report = await cancel_batch(redis, batch, config, on_progress=lambda done: advance(done, total))
    stderr.print(
        f"batch {batch}: {counted(report.queued, 'queued job')} cancelled, "
        f"{counted(report.running, 'running job')} aborting",
        markup=False,
    )
    return 0


async def schedule_run(name: str, *, wait: bool, as_json: bool) -> int:
    config = load_config()
    async with connect() as redis:
        run_id = await request_run(redis, config, name)
        served = await schedules_served(redis)
    if not wait:
        print(run_id)
        return 0
    stderr.print(f"run {run_id} queued; following it (Ctrl-C stops following, not the run)", markup=False)
    if not served:
        stderr.print(
            "no worker is serving schedules right now: the run starts when `askq worker` does", markup=False
        )
    from askq.tail_view import tail_job

    return await tail_job(run_id, as_json=as_json)


async def schedule_history(name: str, *, limit: int, as_json: bool) -> int:
    config = load_config()
    async with connect() as redis:
        entries = await run_history(redis, config, name, limit)
    if as_json:
        print(json.dumps(entries))
    elif not entries:
        stderr.print(f"schedule {name} has no finished runs yet", markup=False)
    else:
        print("\n".join(history_lines(entries)))
    return 0


async def schedule_list(*, as_json: bool) -> int:
    config = load_config()
    async with connect() as redis:
        rows = await schedule_rows(redis, config)
    if as_json:
        print(json.dumps([row.to_json() for row in rows]))
    elif not rows:
        stderr.print("no schedules in jobs.yaml (see docs/schedules.md)", markup=False)
    else:
        stdout.print(schedules_table(rows))
    return 0
