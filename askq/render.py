"""Human output: tables, progress and streamed text, with rich. ``--json`` output never comes here.

Ids, questions, answers, errors, names and paths come from files and providers: they reach rich as
``Text`` cells (never parsed as markup) with their control characters shown (askq.terminal)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from askq.terminal import cell, visible
from common.provider_state import ProviderState
from common.status import JobState
from common.wording import counted
from producer.batches import SHOWN_JOB_IDS, BatchStatus
from producer.results import Result
from producer.schedules import ScheduleRow


def status_table(
    status: BatchStatus, providers: Iterable[ProviderState] = (), halt: str | None = None
) -> Table:
    table = Table(title=cell(f"batch {status.batch}"), show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("total", str(status.total))
    for state in JobState:
        table.add_row(state.value, str(status.counts[state]))
    table.add_row("tokens", tokens_line(status))
    lost = status.lost_prompt_tokens_est + status.lost_completion_tokens_est
    if lost:
        table.add_row("tokens of lost runs", f"{lost} (estimate)")
    if status.truncated:
        table.add_row("cut at max_tokens", f"{status.truncated} (finish_reason length)")
    table.add_row("latency p50 / p95", f"{_ms(status.latency_p50_ms)} / {_ms(status.latency_p95_ms)}")
    if status.errors:
        table.add_row("errors", cell(errors_line(status)))
    table.add_row("source", cell(status.source))
    first = status.job_ids[:SHOWN_JOB_IDS]
    shown = ", ".join(first)
    total = len(status.job_ids) if status.job_ids_total is None else status.job_ids_total
    if total > len(first):
        shown += f" … (+{total - len(first)} more; `askq status {status.batch} --ids` lists all)"
    table.add_row("job ids", cell(shown))
    for provider in providers:
        for line in provider.lines():  # its error quotes the provider: shown, never obeyed
            table.add_row("provider", cell(line))
    if halt is not None:  # quotes the provider's refusal: shown, never obeyed
        table.add_row("halted", cell(f"jobs are not sent: {halt}; fix it, then `askq retry {status.batch}`"))
    return table


def errors_line(status: BatchStatus) -> str:
    """Attempts and jobs that failed, by reason: ``37 × HTTP 429 (5 failed)``."""  # noqa: RUF002  # the sign shown
    parts = []
    for error in status.errors:
        failed = f" ({error.failed} failed)" if error.failed else ""
        parts.append(f"{error.retried + error.failed} × {error.reason}{failed}")
    return ", ".join(parts)


def tokens_line(status: BatchStatus) -> str:
    """The batch's tokens; marked ``~`` and explained when some jobs' usage is askq's estimate."""
    tokens = status.prompt_tokens + status.completion_tokens
    parts = f"{status.prompt_tokens} prompt + {status.completion_tokens} completion"
    if not status.usage_estimated:
        return f"{tokens} ({parts})"
    jobs = counted(status.usage_estimated, "job")
    return f"~{tokens} (~{parts}; estimated: the provider reported no usage for {jobs})"


def results_table(results: Iterable[Result], *, width: int) -> Table:
    """One row per item, each cell on one line, fitted to ``width`` columns of terminal."""
    table = Table(title="results", title_justify="left")
    question_chars = max(min(30, (width - 48) // 3), 10)
    fixed = (("id", 14), ("status", 9), ("tries", 5), ("tokens", 6), ("question", question_chars))
    for column, column_width in fixed:
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=column_width)
    # Borders and padding take 3 characters per column, plus one.
    answer_chars = max(width - sum(column_width for _, column_width in fixed) - 3 * (len(fixed) + 1) - 1, 10)
    table.add_column("answer or error", no_wrap=True, overflow="ellipsis", max_width=answer_chars)
    for result in results:
        style = "green" if result.status == JobState.SUCCEEDED.value else "red"
        shown = result.answer if result.answer is not None else (result.error or "")
        tokens = str(result.usage.get("total_tokens", "")) if result.usage else ""
        table.add_row(
            cell(result.item_id),
            cell(result.status, style),
            str(result.attempts),
            tokens,
            cell(_clip(visible(result.question), question_chars)),
            cell(_clip(visible(shown), answer_chars)),
        )
    return table


def schedules_table(rows: Iterable[ScheduleRow]) -> Table:
    table = Table(title="schedules", title_justify="left")
    for column in ("name", "cron", "timezone", "source", "next fire (local)", "last run"):
        table.add_column(column, overflow="fold")
    for row in rows:
        last = row.last_run.get("state", "never")
        if row.last_run.get("output"):
            last += f" → {row.last_run['output']}"
        fire = row.next_fire.strftime("%Y-%m-%d %H:%M %Z")
        table.add_row(*(cell(text) for text in (row.name, row.cron, row.timezone, row.source, fire, last)))
    return table


def history_lines(entries: Iterable[dict[str, Any]]) -> list[str]:
    """One line a run, newest first: its fire time (the schedule's zone), trigger, state, tokens, and
    the file (or the error) last and whole, so that a path can be copied from the terminal."""
    lines = []
    for entry in entries:
        fire = (
            datetime.fromisoformat(entry["fire_at"]).strftime("%Y-%m-%d %H:%M %Z")
            if entry["fire_at"]
            else "?"
        )
        shown = entry.get("output") or entry.get("error") or ""
        line = (
            f"{fire}  {entry['trigger']:<9}  {entry['state']:<9}  {entry['total_tokens']:>7} tokens  {shown}"
        )
        # Printed as is (no rich), so markup is inert; a provider's error may still carry controls.
        lines.append(visible(line))
    return lines


def batch_progress(console: Console) -> Progress:
    return Progress(
        # The description is a batch name: formatted into the column's text, never read as markup.
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def error_json(kind: str, message: str) -> str:
    """The one line a failing command writes on stderr under ``--json``."""
    return json.dumps({"error": {"type": kind, "message": message}})


@contextmanager
def page_progress(console: Console, what: str, *, show: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar for a long walk over a batch (cancel, delete) on a terminal, nothing elsewhere; yields
    the ``(done, total)`` hook to call after each page."""
    if not (show and console.is_terminal):
        yield lambda done, total: None
        return
    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def progress_detail(status: BatchStatus, started: float, finished_before: int = 0) -> str:
    """The counts, and the rate of the jobs that finished since ``started`` (``finished_before`` had
    then): jobs that were done before the wait began are no part of a rate, or a batch found done
    would show thousands a second."""
    finished = status.finished - finished_before
    if finished <= 0:
        return state_counts(status)
    rate = finished / max(time.monotonic() - started, 1e-6)
    return f"{state_counts(status)} · {rate:.1f}/s"


def state_counts(status: BatchStatus) -> str:
    """Running and failed always; cancelled once there are any."""
    shown = f"running {status.counts[JobState.RUNNING]} · failed {status.counts[JobState.FAILED]}"
    cancelled = status.counts[JobState.CANCELLED]
    return shown + (f" · cancelled {cancelled}" if cancelled else "")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
