"""A worker's prompt reservation: the estimate, raised per model by the prompt tokens the provider
reported, never above the byte ceiling."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from bench.estimate_corpus import unbounded_texts
from bench.tokenizer import reference_prompt_tokens
from common.tokens import prompt_tokens_ceiling, prompt_tokens_estimate
from common.usage import Usage
from worker.answering.prompt_tokens import PromptTokens

MENU = [{"role": "user", "content": "How much is a large iced americano?"}]


def _question(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_a_new_process_reserves_the_estimate() -> None:
    """Before any answer, a call reserves the character-class estimate itself."""
    reservation = PromptTokens().reserve(MENU, "gpt-4o")
    assert reservation.tokens == reservation.estimate == prompt_tokens_estimate(MENU, "gpt-4o")


def test_a_count_above_the_estimate_raises_that_models_reservations() -> None:
    """A reported count above the estimate is reserved next time, for that model only, with one
    warning for the model however often it is raised."""
    tokens = PromptTokens()
    first = tokens.reserve(MENU, "gpt-4o")
    with capture_logs() as logs:
        tokens.reported(first, Usage(prompt_tokens=first.estimate + 10))
        tokens.reported(first, Usage(prompt_tokens=first.estimate + 20))
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert tokens.reserve(MENU, "gpt-4o").tokens == first.estimate + 20
    assert tokens.reserve(MENU, "gpt-4").tokens == prompt_tokens_estimate(MENU, "gpt-4")


@pytest.mark.parametrize(
    "usage",
    [None, Usage(prompt_tokens=5), Usage(prompt_tokens=0), Usage(prompt_tokens=10_000, estimated=True)],
)
def test_counts_below_missing_or_estimated_teach_nothing(usage: Usage | None) -> None:
    """A count under the estimate, none, zero, or askq's own estimate leaves the reservation as it was."""
    tokens = PromptTokens()
    first = tokens.reserve(MENU, "gpt-4o")
    tokens.reported(first, usage)
    assert tokens.reserve(MENU, "gpt-4o").tokens == first.tokens
    assert tokens.factor("gpt-4o") == 1.0


def test_a_reservation_never_passes_the_ceiling() -> None:
    """However high the factor, a call reserves at most its prompt's bytes and frame."""
    tokens = PromptTokens()
    tokens.reported(tokens.reserve(MENU, "gpt-4o"), Usage(prompt_tokens=1_000_000))
    assert tokens.reserve(MENU, "gpt-4o").tokens == prompt_tokens_ceiling(MENU)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_rare_syllables_correct_themselves_after_the_first_answers(model: str) -> None:
    """Random Hangul, which the estimate counts at half its tokens or less, is reserved within 3% of
    its real count once the first 10 answers are reported (real counts from the reference)."""
    texts = unbounded_texts()["random Hangul"]
    longest = _question(texts[-1])
    untaught = PromptTokens().reserve(longest, model).tokens
    assert untaught < 0.9 * reference_prompt_tokens(longest, model)
    tokens = PromptTokens()
    ratios = []
    for text in texts:
        messages = _question(text)
        reservation = tokens.reserve(messages, model)
        real = reference_prompt_tokens(messages, model)
        ratios.append(reservation.tokens / real)
        tokens.reported(reservation, Usage(prompt_tokens=real))
    assert min(ratios[10:]) >= 0.97
