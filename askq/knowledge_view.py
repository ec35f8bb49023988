"""What ``askq knowledge`` shows a person: the build's progress and report, the bases, search hits."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from askq.terminal import cell, visible
from common.knowledge import KnowledgeMeta
from common.wording import counted
from producer.knowledge import BaseRow
from worker.knowledge.build_report import BuildProgress, BuildReport

if TYPE_CHECKING:  # the search module loads the provider's client: only `knowledge search` needs it
    from worker.knowledge.search import Found

PREVIEW_CHARS = 100


class _Bar:
    def __init__(self, progress: Progress, name: str) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task(f"embedding {name}", total=None)

    def planned(self, chunks: int) -> None:
        self._progress.update(self._task, total=chunks)

    def embedded(self, chunks: int) -> None:
        self._progress.advance(self._task, chunks)


@contextmanager
def build_bar(console: Console, name: str, *, show: bool) -> Iterator[BuildProgress | None]:
    """A bar of chunks embedded on ``console`` when ``show`` and standard error is a terminal."""
    if not show or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}", markup=False),  # a base's name is the user's text
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # gone when done: the report says the rest
    )
    with progress:
        yield _Bar(progress, name)


def report_lines(report: BuildReport) -> list[str]:
    """The build's outcome: version and size, then files, then each file skipped with its reason."""
    done = (
        f"knowledge base {report.name} is up to date"
        if report.up_to_date
        else f"built knowledge base {report.name}"
    )
    lines = [
        f"{done}: version {report.version}, {counted(report.chunks, 'chunk')} "
        f"from {counted(report.files_read, 'file')} ({report.model}, {report.dimensions} dimensions)",
        f"files: {len(report.files_embedded)} embedded (changed or new), {report.files_unchanged} unchanged, "
        f"{len(report.skipped)} skipped, {len(report.files_removed)} removed",
        f"chunks: {counted(report.chunks_embedded, 'chunk')} embedded "
        f"in {counted(report.requests, 'request')}, {report.seconds:.1f} s",
    ]
    lines += [f"skipped {item.path}: {item.reason}" for item in report.skipped]
    lines += [f"removed {path}" for path in report.files_removed]
    return [visible(line) for line in lines]  # paths are the user's file names


def bases_table(rows: list[BaseRow]) -> Table:
    table = Table(title="knowledge bases", title_justify="left")
    for column in ("name", "status", "files", "chunks", "model", "dims", "bytes", "built (local)"):
        numeric = column in ("files", "chunks", "dims", "bytes")
        # Numbers and times whole: on a narrow terminal the name, status and model fold instead.
        whole = numeric or column == "built (local)"
        table.add_column(column, justify="right" if numeric else "left", no_wrap=whole, overflow="fold")
    for row in rows:
        meta = row.meta
        numbers = [str(meta.files), str(meta.chunks), meta.model, str(meta.dimensions)] if meta else [""] * 4
        size = f"{row.size_bytes:,}" if meta else ""
        table.add_row(cell(row.name), cell(row.status), *map(cell, numbers), size, row.built_when())
    return table


def search_lines(meta: KnowledgeMeta, question: str, found: list[Found]) -> list[str]:
    """One line a hit, best first: rank, score, file and position, a one-line preview."""
    lines = [
        f"{counted(len(found), 'chunk')} of knowledge base {meta.name} (version {meta.version}, "
        f"{meta.model}) closest to: {_preview(question)}"
    ]
    for rank, hit in enumerate(found, 1):
        where = f"{hit.chunk.file} #{hit.chunk.position}"
        lines.append(f"{rank:>2}. {hit.score:.3f}  {where}  {_preview(hit.chunk.text)}")
    return [visible(line) for line in lines]


def _preview(text: str) -> str:
    flat = " ".join(text.split())  # newlines and tabs too: one line a hit
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
