"""The benchmark's api section, run at a tiny size against a real ``askq serve``: its report is whole."""

from __future__ import annotations

import math
from pathlib import Path

from bench.api import run_api
from bench.report import rows, table


def test_the_api_section_measures_status_results_and_upload_at_a_tiny_size(tmp_path: Path) -> None:
    """300-item batches: every line downloaded, each status of the whole batch, every row finite."""
    result = run_api(tmp_path, status_items=300, result_items=250, upload_lines=200, status_calls=5)

    status, download, upload = result["status"], result["results"], result["upload"]
    assert status["items"] == 300
    for state, done in (("queued", False), ("finished", True)):
        assert status[state]["job_ids_total"] == 300
        assert status[state]["done"] is done
        assert 0 < status[state]["p50_ms"] <= status[state]["p95_ms"]
    assert download["items"] == download["lines"] == 250
    assert download["rss_after_mb"] > 0
    assert upload["lines"] == 200
    assert upload["api_questions_per_s"] > 0
    assert upload["cli_questions_per_s"] > 0

    report = rows({"api": result})
    assert {row.section for row in report} == {"api"}
    assert all(math.isfinite(row.figure) for row in report)
    targets = {row.measure: row.target for row in report if row.target is not None}
    assert targets == {
        "GET a batch of 300 queued: p50": 5,
        "GET a batch of 300 finished: p50": 5,
        "results of 250 jobs: lines/s": 50_000,
        "upload + submit, 200-line file: questions/s": 15_000,
    }
    assert "api" in table(report)
