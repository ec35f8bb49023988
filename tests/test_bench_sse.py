"""The benchmark's sse section, run at a tiny size: its clients stream, storm, and its report is whole."""

from __future__ import annotations

import math
from pathlib import Path

from bench.mixes import Mix
from bench.report import rows, table
from bench.sse import run_sse

TINY = Mix("sse", 3, 3, ttft_ms=200, answer_tokens=30, tokens_per_s=40)


async def test_the_sse_section_streams_storms_and_checks_at_a_tiny_size(tmp_path: Path) -> None:
    """3 jobs x 2 clients: latencies on both sides, every stream whole after the storm, every row finite."""
    result = await run_sse(tmp_path, TINY, per_job=2)

    assert result["clients"] == 6
    for side in (result["sse"], result["direct"]):
        assert side["samples"] > 0
        assert side["p50_ms"] <= side["p95_ms"] <= side["p99_ms"]
    assert result["storm"] == {**result["storm"], "lost": 0, "repeated": 0, "whole_streams": 6, "streams": 6}
    assert result["events"] > result["live_events"] > 0

    report = rows({"sse": result})
    assert {row.section for row in report} == {"sse"}
    assert all(math.isfinite(row.figure) for row in report)
    targets = {row.measure: row.target for row in report if row.target is not None}
    assert targets == {
        "added by SSE, p99 (SSE p99 - direct p99)": 15,
        "reconnect storm: events lost": 0,
        "reconnect storm: events repeated": 0,
        "streams whole (seqs, deltas = stored answer)": 6,
    }
    assert "sse" in table(report)
