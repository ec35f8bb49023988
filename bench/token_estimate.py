"""The `estimate` section: askq's prompt-token estimate and its byte ceiling, per question, against
the real tokenizer of an o200k_base model and a cl100k_base one (bench/tokenizer.py).

Each question is a prompt of its own, one user message, as tight a frame as askq sends (a job type's
system prompt only adds text the estimate overcounts too). A ratio under 1 is an estimate low.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.estimate_corpus import english_questions, korean_questions, system_translations, unbounded_texts
from bench.tokenizer import REFERENCE_MODELS, reference_prompt_tokens
from common.tokens import estimate_prompt_tokens, prompt_tokens_ceiling, prompt_tokens_estimate

SPEED_PROMPT = [
    {"role": "system", "content": "You answer questions about the café's menu. " * 10},
    {
        "role": "user",
        "content": ("How much is a large iced americano? 아이스 아메리카노 라지는 얼마인가요? " * 30),
    },
]
"""About 2 KB, English and Korean: the time one estimate takes on a worker."""


def _ratios(texts: list[str], model: str) -> dict[str, Any]:
    estimates, ceilings = [], []
    for text in texts:
        messages = [{"role": "user", "content": text}]
        reference = reference_prompt_tokens(messages, model)
        estimates.append(prompt_tokens_estimate(messages, model) / reference)
        ceilings.append(prompt_tokens_ceiling(messages) / reference)
    estimates.sort()
    return {
        "questions": len(texts),
        "min": estimates[0],
        "p50": statistics.median(estimates),
        "p95": estimates[int(0.95 * (len(estimates) - 1))],
        "share_under": sum(ratio < 1 for ratio in estimates) / len(estimates),
        "ceiling_min": min(ceilings),
        "ceiling_share_under": sum(ratio < 1 for ratio in ceilings) / len(ceilings),
    }


def _microseconds(count: Callable[[], int], rounds: int = 500) -> float:
    """This thread's CPU per call, the least of 5 runs: the machine is shared."""
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        for _ in range(rounds):
            count()
        best = min(best, (time.thread_time() - started) / rounds * 1e6)
    return best


def run_estimate() -> dict[str, Any]:
    """Ratios estimate / reference per question, by text and by model; the ceiling's too."""
    sets = {"English": english_questions(), "Korean": korean_questions(), **unbounded_texts()}
    translations = system_translations()
    if translations["English"]:
        sets["system's English"] = translations["English"]
        sets["system's Korean"] = translations["Korean"]
    started = time.monotonic()
    results: dict[str, Any] = {
        model: {name: _ratios(texts, model) for name, texts in sets.items()} for model in REFERENCE_MODELS
    }
    return {
        "encodings": REFERENCE_MODELS,
        "by_model": results,
        "took_s": time.monotonic() - started,
        "prompt_bytes": sum(len(message["content"].encode()) for message in SPEED_PROMPT),
        "estimate_us": _microseconds(lambda: prompt_tokens_estimate(SPEED_PROMPT, "gpt-4o")),
        "ceiling_us": _microseconds(lambda: prompt_tokens_ceiling(SPEED_PROMPT)),
        "checks_estimate_us": _microseconds(lambda: estimate_prompt_tokens(SPEED_PROMPT)),
    }
