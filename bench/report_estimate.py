"""The estimate section's rows: askq's prompt-token estimate over the real count, per question."""

from __future__ import annotations

from typing import Any

from bench.report_row import Row

NATURAL = ("English", "Korean", "system's English", "system's Korean")
"""Natural text, where the estimate must never be low; the other sets are what it cannot bound."""


def estimate_rows(estimate: dict[str, Any]) -> list[Row]:
    """Per encoding and text: the lowest ratio estimate / real, p50 and p95 for natural text, the
    share of questions estimated low, the ceiling's lowest ratio; then the estimate's CPU."""
    out: list[Row] = []
    for model, sets in estimate["by_model"].items():
        encoding = estimate["encodings"][model]
        for name, ratios in sets.items():
            natural = name in NATURAL
            label = f"{name} ({ratios['questions']:,}), {encoding.removesuffix('_base')}: est/real lowest"
            out.append(Row("estimate", label, ratios["min"], "", 1.0 if natural else None))
            if natural:
                out += [
                    Row("estimate", "  p50", ratios["p50"], ""),
                    Row("estimate", "  p95", ratios["p95"], ""),
                ]
            share = ratios["share_under"] * 100
            out.append(Row("estimate", "  questions estimated low", share, "%", 0 if natural else None, "<="))
            out.append(Row("estimate", "  ceiling/real lowest", ratios["ceiling_min"], "", 1.0))
    size = f"{estimate['prompt_bytes']:,}-byte"
    out += [
        Row("estimate", f"CPU of one estimate, {size} prompt", estimate["estimate_us"], "us"),
        Row("estimate", "  its ceiling", estimate["ceiling_us"], "us"),
        Row("estimate", "  the checks' estimate (estimate_tokens)", estimate["checks_estimate_us"], "us"),
    ]
    return out
