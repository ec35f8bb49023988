"""The benchmark's knowledge batching and build sections, run at a tiny size: their runs are whole, their
counts add up, and their report rows are finite."""

from __future__ import annotations

import math
from pathlib import Path

from bench.knowledge_batching import KNOWLEDGE, PLAIN, run_knowledge_batching
from bench.knowledge_build import run_knowledge_build
from bench.mixes import Mix
from bench.report import rows, table

QUICK = Mix("quick", jobs=0, concurrency=0, ttft_ms=20, answer_tokens=3, tokens_per_s=0)
"""A fast pace: the section sets the questions and the concurrency itself."""


def test_the_batching_section_runs_both_job_types_in_alternating_rounds(tmp_path: Path) -> None:
    """40 questions, 2 rounds: plain then knowledge, knowledge then plain; each knowledge question embedded
    once and no plain one at all; every question answered; the report's rows finite with their targets."""
    result = run_knowledge_batching(tmp_path, QUICK, questions=40, rounds=2, files=3)

    runs = result["runs"]
    assert [(run["round"], run["job_type"]) for run in runs] == [
        (1, PLAIN), (1, KNOWLEDGE), (2, KNOWLEDGE), (2, PLAIN),
    ]  # fmt: skip
    assert all(run["succeeded"] == run["questions"] == 40 for run in runs)
    assert result["all_succeeded"] is True
    assert result["same_answer_tokens"] is True
    assert result["plain_embedding_requests"] == 0
    for run in runs:
        if run["job_type"] == KNOWLEDGE:
            assert run["embedding_inputs"] == 40
            assert 1 <= run["embedding_requests"] <= 40
    assert result["mix"]["concurrency"] == 64
    assert result["chunks"] == 3 * 4
    assert set(result["round_ratios"]) == {"1", "2"}

    report = rows({"knowledge_batching": result})
    assert all(math.isfinite(row.figure) for row in report)
    targets = {row.measure: row.target for row in report if row.target is not None}
    assert targets == {
        "questions per embeddings request, concurrency 64": 16,
        "questions/s with knowledge / without": 0.9,
        "every question answered": 1,
        "answers as many tokens with knowledge as without": 1,
    }
    assert "round 2, with" in table(report)


def test_the_build_section_counts_what_a_rebuild_after_one_edit_embeds(tmp_path: Path) -> None:
    """3 files of 4 sections: the build embeds 12 chunks; after file 1's edit the rebuild sends its 4 only."""
    result = run_knowledge_build(tmp_path, files=3, sections=4, edited=1)

    build, rebuild = result["build"], result["rebuild"]
    assert build["chunks"] == build["chunks_embedded"] == build["simulator_inputs"] == 12
    assert build["chunks_per_s"] > 0
    assert rebuild["edited_file_chunks"] == rebuild["simulator_inputs"] == rebuild["chunks_embedded"] == 4
    assert rebuild["only_that_file"] is True

    report = rows({"knowledge_build": result})
    assert all(math.isfinite(row.figure) for row in report)
    assert [row.target for row in report if row.target is not None] == [1]
    assert all(row.met is not False for row in report)
