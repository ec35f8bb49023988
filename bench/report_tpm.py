"""The tpm section's rows: the share of the provider's token limit used, and of requests refused."""

from __future__ import annotations

from typing import Any

from bench.report_row import Row

RUNS = (
    ("headers", "headers only (nothing in jobs.yaml)", 1.0),
    ("configured", "tokens_per_minute at 98% of the limit", 0.5),
)
"""Each run, as the table names it, and its target share of 429s (%)."""


def tpm_rows(tpm: dict[str, Any]) -> list[Row]:
    limit = f"{tpm['limit']:,}"
    out = []
    for key, label, most_429 in RUNS:
        run = tpm[key]
        out += [
            Row("tpm", f"{label}: tokens used/min / the {limit} limit", run["of_limit"], "", 0.95),
            Row("tpm", "  requests answered 429", run["share_429"] * 100, "%", most_429, "<="),
            Row("tpm", "  jobs/s over the run", run["jobs"] / run["elapsed_s"], "/s"),
        ]
    return out
