"""The summary file: ``OUTPUT/NAME/YYYY-MM-DD.md``, a short header, then the summary."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from common.prices import PriceConfig, cost_nusd, price_for
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


def estimated_cost_usd(report: RunReport, prices: Mapping[str, PriceConfig | None]) -> float | None:
    """The run's cost at its model's price, None when the model has no price (unknown, not zero)."""
    price = price_for(prices, report.model)
    if price is None:
        return None
    discount = cost_nusd(report.map_usage, price) * BATCH_API_DISCOUNT if report.batch_api else 0.0
    return (cost_nusd(report.usage, price) - discount) / 1e9


def render(report: RunReport, summary: str | None, prices: Mapping[str, PriceConfig | None]) -> str:
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
        lines += [f"- {how}; model {report.model}", _tokens_line(report, cost)]
    lines += [f"- run: {report.run_id} ({report.trigger})", ""]
    body = summary if summary is not None else "Nothing to summarize: nothing new since the previous run."
    return "\n".join(lines) + "\n" + body.rstrip() + "\n"


def _tokens_line(report: RunReport, cost_usd: float | None) -> str:
    usage = report.usage
    # The provider reported no usage for some calls: their counts are askq's own estimate.
    about = "~" if usage.estimated else ""
    if cost_usd is None:
        cost = f"estimated cost unknown (no price for model {report.model} in prices:)"
    else:
        cost = f"estimated cost {about}${cost_usd:.4f}"
    tokens = f"{about}{usage.prompt_tokens} in, {about}{usage.completion_tokens} out"
    if usage.estimated:
        tokens += " (estimated: the provider reported no usage)"
    return f"- tokens: {tokens}; {cost}"


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
