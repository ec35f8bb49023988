"""The benchmark's knowledge section, run at a tiny size: its children answer and its report is whole."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bench.knowledge_search import run_knowledge
from bench.report import rows, table


def test_the_knowledge_section_measures_search_and_memory_at_a_tiny_size(tmp_path: Path) -> None:
    """1,000 x 16: one-core and default-thread search times, the loaded matrix intact, every row finite."""
    result = run_knowledge(tmp_path, rows=1000, dimensions=16, single_calls=5, batch_calls=2)

    one_core, default, memory = result["one_core"], result["default"], result["memory"]
    assert one_core["cpus"] == 1
    assert one_core["blas_threads_env"] == "1"
    assert default["cpus"] == len(os.sched_getaffinity(0))
    for run in (one_core, default):
        for calls in (run["single"], run["batch"]):
            assert 0 < calls["p50_ms"] <= calls["p95_ms"]
        assert run["batch_product_floor_ms"] > 0
    assert memory["matrix_bytes"] == 1000 * 16 * 4
    assert memory["loaded_intact"] is True
    assert memory["load_s"] > 0

    report = rows({"knowledge": result})
    assert {row.section for row in report} == {"knowledge"}
    assert all(math.isfinite(row.figure) for row in report)
    targets = {row.measure: row.target for row in report if row.target is not None}
    assert targets == {
        "search 1,000 x 16, 1 question, 1 core: p50": 10,
        "32 questions a call, 1 core: p50": 40,
        "worker's memory growth by load_index / matrix": 1.2,
        "loaded matrix equals the written one": 1,
    }
    assert "knowledge" in table(report)
