"""What ``askq submit`` tells a person: its progress on a terminal, and what it did, in plain counts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from askq.terminal import visible
from common.wording import counted
from producer.submit_report import SubmitProgress, SubmitReport


def summary_lines(report: SubmitReport) -> list[str]:
    """The submit's outcome for stderr: its counts, and the items left as they were because the
    batch holds another question for them."""
    lines = [
        f"{counted(report.items, 'question')}: {report.enqueued:,} enqueued, "
        f"{report.skipped_existing:,} already in batch {report.batch}"
    ]
    if report.conflicting:
        lines.append(conflict_line(report))
    return lines


def conflict_line(report: SubmitReport) -> str:
    shown = ", ".join(visible(item_id) for item_id in report.conflicting_ids)
    which = f"ids: {shown}" if len(report.conflicting_ids) == report.conflicting else f"first ids: {shown}"
    return (
        f"{counted(report.conflicting, 'item')} already in batch {report.batch} with a different question "
        f"or request, left as they were ({which}); submit to another --batch to ask them anew"
    )


class _Bar:
    """The check pass counts questions (its total is unknown), then the enqueue pass fills the bar."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task("checking", total=None)

    def checked(self, items: int) -> None:
        self._progress.update(self._task, completed=items)

    def written(self, items: int, total: int) -> None:
        self._progress.update(self._task, description="enqueueing", completed=items, total=total)


@contextmanager
def submit_bar(console: Console, *, show: bool) -> Iterator[SubmitProgress | None]:
    """A progress bar on ``console`` when ``show`` and standard error is a terminal; else None."""
    if not show or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # gone when done: the summary line says the rest
    )
    with progress:
        yield _Bar(progress)
