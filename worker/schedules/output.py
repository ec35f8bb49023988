"""The summary file: ``OUTPUT/NAME/YYYY-MM-DD.md``, a short header, then the summary."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from common.config import ProviderConfig
from common.usage import Usage
from common.wording import counted

BATCH_API_DISCOUNT = 0.5


@dataclass(frozen=True)
class RunReport:
    schedule: str
    run_id: str
    trigger: str
    window_start: datetime | None
    """None for a ``files`` source: it reads what changed since the last run, not a time window."""
    window_end: datetime
    counts: dict[str, int]
    chunks: int
    calls: int
    reduce_levels: int
    usage: Usage
    map_usage: Usage
    batch_api: bool
    model: str


def estimated_cost_usd(report: RunReport, prices: ProviderConfig) -> float:
    def cost(usage: Usage) -> float:
        return (
            usage.prompt_tokens * prices.input_usd_per_mtok
            + usage.completion_tokens * prices.output_usd_per_mtok
        ) / 1e6

    discount = cost(report.map_usage) * BATCH_API_DISCOUNT if report.batch_api else 0.0
    return cost(report.usage) - discount


def render(report: RunReport, summary: str | None, prices: ProviderConfig) -> str:
    """The file's text; ``summary`` None means nothing was new, and no model was called."""
    zone = report.window_end.tzinfo
    day = report.window_end.strftime("%Y-%m-%d")
    counts = ", ".join(f"{count} {what}" for what, count in report.counts.items())
    lines = [f"# {report.schedule}: summary for {day}", ""]
    if report.window_start is not None:
        start, end = _when(report.window_start), _when(report.window_end)
        if start == end:  # a window of seconds: a run soon after the previous one
            start, end = _when(report.window_start, seconds=True), _when(report.window_end, seconds=True)
        lines.append(f"- window: {start} → {end} ({zone})")
    else:
        lines.append(f"- files changed since the previous run, as of {_when(report.window_end)} ({zone})")
    lines.append(f"- input: {counts}")
    if summary is not None:
        cost = estimated_cost_usd(report, prices)
        how = f"{counted(report.chunks, 'chunk')}, {counted(report.calls, 'model call')}"
        if report.reduce_levels:
            levels = "level" if report.reduce_levels == 1 else "levels"
            how += f", {report.reduce_levels} intermediate reduce {levels}"
        if report.batch_api and report.chunks > 1:
            how += ", map step through the Batch API"
        lines += [f"- {how}; model {report.model}", _tokens_line(report.usage, cost)]
    lines += [f"- run: {report.run_id} ({report.trigger})", ""]
    body = summary if summary is not None else "Nothing to summarize: nothing new since the previous run."
    return "\n".join(lines) + "\n" + body.rstrip() + "\n"


def _tokens_line(usage: Usage, cost_usd: float) -> str:
    if not usage.estimated:
        tokens = f"{usage.prompt_tokens} in, {usage.completion_tokens} out"
        return f"- tokens: {tokens}; estimated cost ${cost_usd:.4f}"
    # The provider reported no usage for some calls: their counts are askq's own estimate.
    return (
        f"- tokens: ~{usage.prompt_tokens} in, ~{usage.completion_tokens} out (estimated: the provider "
        f"reported no usage); estimated cost ~${cost_usd:.4f}"
    )


def _when(moment: datetime, *, seconds: bool = False) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def output_path(base: Path, fire_local: datetime, run_id: str) -> Path:
    """The day's file in ``base``, unless another run of the same day wrote it: then one named by the
    time too, and a counter after that if runs came within the same second."""
    names = [f"{fire_local:%Y-%m-%d}", f"{fire_local:%Y-%m-%d-%H%M%S}"]
    for name in itertools.chain(names, (f"{names[1]}-{n}" for n in itertools.count(2))):
        path = base / f"{name}.md"
        if path.is_symlink():
            continue  # never read or replaced through a link: the name is taken
        if not path.exists() or f"- run: {run_id} " in path.read_text(encoding="utf-8", errors="replace"):
            return path
    raise AssertionError("unreachable: the counter is endless")  # pragma: no cover
