"""``askq tail``: one job's text as it streams, or a whole batch's progress and answers.

Answer text goes to stdout; notices (waiting, retries, gaps, reconnects) go to stderr, so
``askq tail JOB > answer.txt`` saves exactly the answer. ``--json`` prints events as JSON lines.

Ids, answers and provider errors are untrusted: what reaches a terminal has its control characters
shown, not obeyed, and never passes as markup (askq.terminal). The one raw output is a job's answer
into a file or pipe (see ``_JobView._out``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from askq.render import batch_progress, state_counts
from askq.terminal import json_line, make_console, markup, visible
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.status import JobState
from common.usage import CUT_AT_MAX_TOKENS
from common.wording import counted
from producer.batch_tail import BatchItem, JobEnded, Progress, Unseen, follow_batch
from producer.batches import BatchStatus
from producer.connection import connect
from producer.tail import Finished, Gap, ProviderWait, TailItem, Waiting, follow_job

stderr = make_console(stderr=True)
SUMMARY_PART = "summary"
"""The part of a scheduled run that is its answer."""
FOLLOW_WRAP_CHARS = 100


async def tail_job(job_id: str, *, as_json: bool, url: str | None = None) -> int:
    """Print a job's text from its start, then live; exit 0 if it succeeds, 1 if it fails."""
    view = _JobView()
    succeeded = False
    async with connect(url) as redis:
        async for item in follow_job(redis, job_id):
            if isinstance(item, Reconnecting):
                _reconnecting(item)
            elif as_json:
                _print_json(item)
            else:
                view.show(item)
            if isinstance(item, Finished):
                succeeded = item.state is JobState.SUCCEEDED
            elif isinstance(item, StreamEvent) and item.type.is_final:
                # Not necessarily the last: a job re-run by `askq retry` has an earlier end.
                succeeded = item.type is EventType.DONE
    return 0 if succeeded else 1


async def tail_batch(batch: str, *, follow: bool, as_json: bool, url: str | None = None) -> int:
    """Show a batch's progress and each answer as its job ends; exit 0 if no job failed."""
    status: BatchStatus | None = None
    async with connect(url) as redis:
        if as_json:
            async for item in follow_batch(redis, batch, follow=follow):
                status = item.status if isinstance(item, Progress) else status
                if isinstance(item, Reconnecting):
                    _reconnecting(item)
                elif not isinstance(item, Progress):
                    _print_json(item)
        else:
            status = await _BatchView(batch).run(follow_batch(redis, batch, follow=follow))
    return 0 if status is None or status.all_succeeded else 1


def _print_json(item: TailItem | BatchItem) -> None:
    print(json_line(json.dumps(as_json(item), ensure_ascii=False)), flush=True)


def as_json(item: TailItem | BatchItem) -> dict[str, Any]:
    """The JSON line for an item: events as published, tail's own notices with their own ``type``."""
    if isinstance(item, StreamEvent):
        result: dict[str, Any] = json.loads(item.to_json())
        return result
    if isinstance(item, Waiting):
        return {"type": "waiting", "job_id": item.job_id}
    if isinstance(item, ProviderWait):
        return {"type": "provider_wait", "job_id": item.job_id, "attempt": item.attempt}
    if isinstance(item, Gap):
        return {"type": "gap", "job_id": item.job_id, "first_seq": item.first_seq, "last_seq": item.last_seq}
    if isinstance(item, Unseen):
        return {"type": "unseen", "count": item.count}
    if isinstance(item, Finished):
        return {
            "type": "result" if isinstance(item, JobEnded) else "finished",
            "job_id": item.job_id,
            "state": item.state.value,
            "answer": item.answer if item.state is JobState.SUCCEEDED else None,
            "error": item.error or None,
            "attempts": item.attempts,
            "usage": item.usage.model_dump(exclude_none=True) if item.usage else None,
            "finish_reason": item.finish_reason,
        }
    raise TypeError(f"no JSON form for {type(item).__name__}")  # pragma: no cover


def _reconnecting(item: Reconnecting) -> None:
    stderr.print(
        f"[yellow]lost the Redis connection ({markup(item.error)}); "
        f"reconnecting in {item.retry_in_s:.1f} s[/]"
    )


def _cut_notice(max_tokens: int) -> None:
    """Said after an answer that ended at max_tokens (0: the cap is not known here)."""
    cap = f" ({max_tokens})" if max_tokens else ""
    stderr.print(f"[yellow]cut at max_tokens{cap}: the answer is incomplete[/]")


def _gap_notice(item: Gap) -> str:
    return (
        f"events {item.first_seq}–{item.last_seq} of {item.job_id} are no longer in the event log "
        "(trimmed or lost): the text shown is incomplete; `askq results` has the stored answer"
    )


def _retry_notice(item: StreamEvent) -> str:
    wait = f"; retrying in {item.retry_in_s:.1f} s" if item.retry_in_s is not None else "; retrying"
    return f"attempt {item.attempt} failed ({item.error}){wait}: its text so far is discarded"


def _waiting_notice(item: StreamEvent) -> str:
    return f"waiting for the provider: {item.reason or 'busy'}"


class _JobView:
    """On a terminal the text streams live. Into a file or pipe, each attempt's text is held until it
    succeeds, so ``askq tail JOB > answer.txt`` holds exactly the stored answer, never a dead prefix."""

    def __init__(self, *, live: bool | None = None) -> None:
        self._live = sys.stdout.isatty() if live is None else live
        self._attempt_text: list[str] = []
        # A scheduled run's calls, each its own text; the one named "summary" is the run's answer.
        self._parts: dict[str, list[str]] = {}
        self._summary_started = False
        self._said_provider_wait = False
        self._status_shown = False
        """A status line stands on the terminal's stderr, to be erased before anything else shows."""

    def _out(self, text: str) -> None:
        # On a terminal, text is shown, never obeyed. Into a file or pipe it goes raw: there it is data,
        # documented to equal the stored answer byte for byte (scripts compare it with `askq results`),
        # and changing it would corrupt the one copy meant to be exact. The terminal risk moves to
        # whoever later prints the file, as with any downloaded file; `less` shows controls as ^[.
        # Notices go to stderr, often still the terminal: they are always neutralised.
        _write(visible(text) if self._live else text)

    def show(self, item: TailItem) -> None:
        if self._status_shown:
            stderr.file.write("\r\x1b[2K")  # carriage return, erase the line: the status is over
            stderr.file.flush()
            self._status_shown = False
        if isinstance(item, ProviderWait):
            self._provider_wait()
        elif isinstance(item, Waiting):
            stderr.print(f"[dim]{markup(item.job_id)} is queued; waiting for a worker…[/]")
        elif isinstance(item, Gap):
            stderr.print(f"\n[yellow]{markup(_gap_notice(item))}[/]")
        elif isinstance(item, Finished):
            self._finished(item)
        elif isinstance(item, StreamEvent):
            self._event(item)

    def _provider_wait(self) -> None:
        """A started attempt has no text yet (a server with every slot busy queues it without a byte):
        on a terminal a status line until something comes, elsewhere one line for the whole job."""
        notice = "[dim]waiting for the provider…[/]"
        if stderr.is_terminal:
            stderr.print(notice, end="")
            self._status_shown = True
        elif not self._said_provider_wait:
            stderr.print(notice)
        self._said_provider_wait = True

    def _event(self, item: StreamEvent) -> None:
        if item.part is not None:
            self._part_event(item)
        elif item.type is EventType.DELTA:
            self._attempt_text.append(item.text or "")
            if self._live:
                self._out(item.text or "")
        elif item.type is EventType.RETRY:
            shown = self._live and any(self._attempt_text)
            stderr.print(("\n" if shown else "") + f"[dim]{markup(_retry_notice(item))}[/]")
            self._attempt_text.clear()
        elif item.type is EventType.WAITING:
            stderr.print(f"[dim]{markup(_waiting_notice(item))}[/]")
        elif item.type is EventType.DONE:
            text = "".join(self._attempt_text) or "".join(self._parts.get(SUMMARY_PART, []))
            self._out(_line_end(text) if self._live else text)
            if item.finish_reason == CUT_AT_MAX_TOKENS:
                _cut_notice(item.max_tokens or 0)
        elif item.type is EventType.FAILED:
            stderr.print(f"\n[red]failed after {_attempts(item.attempt)}:[/] {markup(item.error or '')}")
        elif item.type is EventType.CANCELLED:
            stderr.print(f"\n[yellow]{markup(item.error or 'cancelled')}[/]")

    def _part_event(self, item: StreamEvent) -> None:
        """A run's calls go side by side: each map or reduce call is shown whole when it is done; the
        last, the summary, streams live."""
        part = item.part or ""
        if item.type is EventType.DELTA:
            self._parts.setdefault(part, []).append(item.text or "")
            if self._live and part == SUMMARY_PART:
                if not self._summary_started:
                    stderr.print(f"\n[bold]── {markup(part)} ──[/]")
                    self._summary_started = True
                self._out(item.text or "")
        elif item.type is EventType.PART_DONE and self._live and part != SUMMARY_PART:
            tokens = f", {item.usage.completion_tokens} tokens" if item.usage else ""
            stderr.print(f"[dim]── {markup(part)} ✓{tokens} ──[/]")
            self._out("".join(self._parts.get(part, [])).rstrip("\n") + "\n")
        elif item.type is EventType.RETRY:
            stderr.print(f"[dim]{markup(part)}: {markup(_retry_notice(item))}[/]")
            self._parts.pop(part, None)

    def _finished(self, item: Finished) -> None:
        if self._live and any(self._attempt_text):
            stderr.print("\n[dim]the event log holds no more of the job's events; its stored result:[/]")
        if item.state is JobState.SUCCEEDED:
            self._out(item.answer + _line_end(item.answer) if self._live else item.answer)
            if item.cut_at is not None:
                _cut_notice(item.cut_at)
        elif item.state is JobState.CANCELLED:
            stderr.print(f"[yellow]{markup(item.error or 'cancelled')}[/]")
        else:
            stderr.print(f"[red]failed after {_attempts(item.attempts)}:[/] {markup(item.error)}")


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
            _reconnecting(item)
        elif isinstance(item, Gap):
            self._print_notice(_gap_notice(item))
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
            self._print(f"{label} │ ({_retry_notice(item)})")
        elif item.type is EventType.WAITING:
            self._print(f"{label} │ ({_waiting_notice(item)})")

    def _ended(self, item: JobEnded) -> None:
        label = self._label(item.job_id)
        rest = self._lines.pop(item.job_id, "")
        if rest:
            self._print(f"{label} │ {rest}")
        tokens = item.usage.total_tokens if item.usage else 0
        approx = "~" if item.usage and item.usage.estimated else ""
        cut = ", cut at max_tokens" if item.cut_at is not None else ""
        if item.state is JobState.SUCCEEDED:
            self._print(f"── {label} ✓ ({_attempts(item.attempts)}, {approx}{tokens} tokens{cut})")
            if item.job_id not in self._streamed:
                self._print(item.answer)
        elif item.state is JobState.CANCELLED:
            self._print(f"── {label} ⊘ {item.error or 'cancelled'}")
        else:
            self._print(f"── {label} ✗ failed after {_attempts(item.attempts)}: {item.error}")

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


def _write(text: str) -> None:
    # Answer text bypasses rich, which would re-wrap it to the terminal width (callers neutralise it).
    sys.stdout.write(text)
    sys.stdout.flush()


def _line_end(text: str) -> str:
    """What ends an answer on a terminal, so the prompt starts on a line of its own. Only there: into a
    file or pipe the answer's bytes are the whole output, a trailing newline only if it had one."""
    return "" if text.endswith("\n") else "\n"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
