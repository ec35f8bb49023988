"""``askq tail JOB``: one job's text as it streams (a batch's tail is ``askq.tail_batch_view``).

Answer text goes to stdout; notices (waiting, retries, gaps, reconnects) go to stderr, so
``askq tail JOB > answer.txt`` saves exactly the answer. ``--json`` prints events as JSON lines.

Ids, answers and provider errors are untrusted: what reaches a terminal has its control characters
shown, not obeyed, and never passes as markup (askq.terminal). The one raw output is a job's answer
into a file or pipe (see ``_JobView._out``).
"""

from __future__ import annotations

import sys

from askq.tail_notices import (
    attempts,
    gap_notice,
    print_json,
    reconnecting,
    retry_notice,
    sources_notice,
    stderr,
    waiting_notice,
)
from askq.terminal import markup, visible
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.sources import Source
from common.status import JobState
from common.usage import CUT_AT_MAX_TOKENS
from producer.connection import connect
from producer.tail import Finished, Gap, ProviderWait, TailItem, Waiting, follow_job

SUMMARY_PART = "summary"
"""The part of a scheduled run that is its answer."""


async def tail_job(job_id: str, *, as_json: bool, url: str | None = None) -> int:
    """Print a job's text from its start, then live; exit 0 if it succeeds, 1 if it fails."""
    view = _JobView()
    succeeded = False
    async with connect(url) as redis:
        async for item in follow_job(redis, job_id):
            if isinstance(item, Reconnecting):
                reconnecting(item)
            elif as_json:
                print_json(item)
            else:
                view.show(item)
            if isinstance(item, Finished):
                succeeded = item.state is JobState.SUCCEEDED
            elif isinstance(item, StreamEvent) and item.type.is_final:
                # Not necessarily the last: a job re-run by `askq retry` has an earlier end.
                succeeded = item.type is EventType.DONE
    return 0 if succeeded else 1


def _cut_notice(max_tokens: int) -> None:
    """Said after an answer that ended at max_tokens (0: the cap is not known here)."""
    cap = f" ({max_tokens})" if max_tokens else ""
    stderr.print(f"[yellow]cut at max_tokens{cap}: the answer is incomplete[/]")


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
        self._said_sources = False
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
            stderr.print(f"\n[yellow]{markup(gap_notice(item))}[/]")
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
            stderr.print(("\n" if shown else "") + f"[dim]{markup(retry_notice(item))}[/]")
            self._attempt_text.clear()
        elif item.type is EventType.WAITING:
            stderr.print(f"[dim]{markup(waiting_notice(item))}[/]")
        elif item.type is EventType.SOURCES:
            self._sources(item.sources or [])
        elif item.type is EventType.DONE:
            text = "".join(self._attempt_text) or "".join(self._parts.get(SUMMARY_PART, []))
            self._out(_line_end(text) if self._live else text)
            if item.finish_reason == CUT_AT_MAX_TOKENS:
                _cut_notice(item.max_tokens or 0)
        elif item.type is EventType.FAILED:
            stderr.print(f"\n[red]failed after {attempts(item.attempt)}:[/] {markup(item.error or '')}")
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
            stderr.print(f"[dim]{markup(part)}: {markup(retry_notice(item))}[/]")
            self._parts.pop(part, None)

    def _sources(self, sources: list[Source]) -> None:
        """Where the answer comes from, before it: on stderr, so stdout stays the answer alone. File
        names come from the knowledge files: shown, never obeyed."""
        stderr.print(f"[dim]{markup(sources_notice(sources))}[/]", soft_wrap=True)
        self._said_sources = True

    def _finished(self, item: Finished) -> None:
        if self._live and any(self._attempt_text):
            stderr.print("\n[dim]the event log holds no more of the job's events; its stored result:[/]")
        if item.sources is not None and not self._said_sources:
            self._sources(item.sources)
        if item.state is JobState.SUCCEEDED:
            self._out(item.answer + _line_end(item.answer) if self._live else item.answer)
            if item.cut_at is not None:
                _cut_notice(item.cut_at)
        elif item.state is JobState.CANCELLED:
            stderr.print(f"[yellow]{markup(item.error or 'cancelled')}[/]")
        else:
            stderr.print(f"[red]failed after {attempts(item.attempts)}:[/] {markup(item.error)}")


def _write(text: str) -> None:
    # Answer text bypasses rich, which would re-wrap it to the terminal width (callers neutralise it).
    sys.stdout.write(text)
    sys.stdout.flush()


def _line_end(text: str) -> str:
    """What ends an answer on a terminal, so the prompt starts on a line of its own. Only there: into a
    file or pipe the answer's bytes are the whole output, a trailing newline only if it had one."""
    return "" if text.endswith("\n") else "\n"
