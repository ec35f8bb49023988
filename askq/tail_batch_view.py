"""``askq tail --batch``: a batch's progress, and each answer as its job ends (with ``--follow``,
every job's text line by line).

The progress and answers are a report for reading: on a terminal they share one console with the
bar; into a file or pipe the lines go to stdout and the bar to stderr. Every line is shown, never
obeyed (askq.terminal); ``askq results`` and ``--json`` have the exact text.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from askq.render import batch_progress, state_counts
from askq.tail_notices import (
    attempts,
    gap_notice,
    print_json,
    reconnecting,
    retry_notice,
    stderr,
    waiting_notice,
)
from askq.terminal import make_console, markup, visible
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.status import JobState
from common.wording import counted
from producer.batch_tail import follow_batch
from producer.batch_tail_items import BatchItem, JobEnded, Progress, Unseen
from producer.batches import BatchStatus
from producer.connection import connect
from producer.tail import Gap

FOLLOW_WRAP_CHARS = 100


async def tail_batch(batch: str, *, follow: bool, as_json: bool, url: str | None = None) -> int:
    """Show a batch's progress and each answer as its job ends; exit 0 if no job failed."""
    status: BatchStatus | None = None
    async with connect(url) as redis:
        if as_json:
            async for item in follow_batch(redis, batch, follow=follow):
                status = item.status if isinstance(item, Progress) else status
                if isinstance(item, Reconnecting):
                    reconnecting(item)
                elif not isinstance(item, Progress):
                    print_json(item)
        else:
            status = await _BatchView(batch).run(follow_batch(redis, batch, follow=follow))
    return 0 if status is None or status.all_succeeded else 1


class _BatchView:
    """A progress bar, with each ended job's answer (or with ``--follow``, every line) printed above it."""

    def __init__(self, batch: str) -> None:
        self._batch = batch
        # On a terminal, text and bar share one console, so rich keeps the bar below the text.
        self._console = make_console() if sys.stdout.isatty() else stderr
        self._lines: dict[str, str] = {}
        self._streamed: set[str] = set()
        """Jobs whose text went by line by line (--follow): their end does not repeat it."""
        self._started = time.monotonic()
        self._ended_before: int | None = None
        """Jobs that had ended when the first progress came: their ends say nothing of the pace."""

    async def run(self, items: Any) -> BatchStatus | None:
        status: BatchStatus | None = None
        progress = batch_progress(self._console)
        with progress:
            task = progress.add_task(self._batch, total=None, detail="")
            async for item in items:
                if isinstance(item, Progress):
                    status = item.status
                    progress.update(
                        task, completed=status.finished, total=status.total, detail=self._detail(status)
                    )
                else:
                    self._show(item)
        return status

    def _show(self, item: BatchItem) -> None:
        if isinstance(item, Reconnecting):
            reconnecting(item)
        elif isinstance(item, Gap):
            self._print_notice(gap_notice(item))
        elif isinstance(item, Unseen):
            self._print_notice(f"{counted(item.count, 'job')} ended but their records are gone (expired)")
        elif isinstance(item, JobEnded):
            self._ended(item)
        elif isinstance(item, StreamEvent):
            self._event(item)

    def _event(self, item: StreamEvent) -> None:
        label = self._label(item.job_id)
        if item.type is EventType.DELTA:
            self._streamed.add(item.job_id)
            pending = self._lines.get(item.job_id, "") + (item.text or "")
            *complete, rest = pending.split("\n")
            if len(rest) >= FOLLOW_WRAP_CHARS and " " in rest:
                # A long paragraph streams as wrapped lines rather than waiting for its newline.
                head, rest = rest.rsplit(" ", 1)
                complete.append(head)
            for line in complete:
                self._print(f"{label} │ {line}")
            self._lines[item.job_id] = rest
        elif item.type is EventType.RETRY:
            self._lines.pop(item.job_id, None)
            self._print(f"{label} │ ({retry_notice(item)})")
        elif item.type is EventType.WAITING:
            self._print(f"{label} │ ({waiting_notice(item)})")

    def _ended(self, item: JobEnded) -> None:
        label = self._label(item.job_id)
        rest = self._lines.pop(item.job_id, "")
        if rest:
            self._print(f"{label} │ {rest}")
        tokens = item.usage.total_tokens if item.usage else 0
        approx = "~" if item.usage and item.usage.estimated else ""
        cut = ", cut at max_tokens" if item.cut_at is not None else ""
        if item.state is JobState.SUCCEEDED:
            self._print(f"── {label} ✓ ({attempts(item.attempts)}, {approx}{tokens} tokens{cut})")
            if item.job_id not in self._streamed:
                self._print(item.answer)
        elif item.state is JobState.CANCELLED:
            self._print(f"── {label} ⊘ {item.error or 'cancelled'}")
        else:
            self._print(f"── {label} ✗ failed after {attempts(item.attempts)}: {item.error}")

    def _label(self, job_id: str) -> str:
        return job_id.removeprefix(f"{self._batch}:")

    def _detail(self, status: BatchStatus) -> str:
        tokens = status.prompt_tokens + status.completion_tokens
        approx = "~" if status.usage_estimated else ""
        return f"{state_counts(status)} · {approx}{tokens} tokens{self._rate(status)}"

    def _rate(self, status: BatchStatus) -> str:
        """Jobs ended a second while this tail watched. Counting the ends from before it came over the
        time it watched made a batch that had ended show hundreds a second; such a batch shows none."""
        if self._ended_before is None:
            self._ended_before = status.finished
        if self._ended_before >= status.total:
            return ""
        ended = status.finished - self._ended_before
        return f" · {ended / max(time.monotonic() - self._started, 1e-6):.1f}/s"

    def _print(self, line: str) -> None:
        # Always shown, not obeyed, even into a file: this is a report for reading (labels, marks,
        # interleaved jobs), not the answer; `askq results` and `--json` have the exact text.
        (self._print_console if self._console is not stderr else _print_raw)(visible(line))

    def _print_notice(self, text: str) -> None:
        stderr.print(f"[yellow]{markup(text)}[/]")

    def _print_console(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)


def _print_raw(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
