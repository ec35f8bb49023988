"""What a call reserves of a tokens-per-minute pace for its prompt: the estimate (common.tokens),
raised per model by what the provider reported.

The estimate never errs low on natural English and Korean, but text no character class bounds
(rare Hangul syllables take 2 to 3 tokens each, base64 more than its letters say) can take more.
Each answer's reported prompt tokens, over the estimate of the same messages, raise that model's
factor (never below 1): a batch of such text corrects itself after its first answers, not on every
call. Never above the byte ceiling, which no text exceeds. One per worker process: a factor learned
by one job serves the others of that model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from common.tokens import prompt_tokens_ceiling, prompt_tokens_estimate
from common.usage import Usage

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PromptReservation:
    """One call's prompt tokens, as reserved before it: ``tokens`` is what the pace takes."""

    model: str
    estimate: int
    """The character-class estimate, before the model's factor: what a reported count is set against."""
    tokens: int


class PromptTokens:
    """Each model's factor over the estimate, learned in this process from reported usage."""

    def __init__(self) -> None:
        self._factors: dict[str, float] = {}

    def factor(self, model: str) -> float:
        return self._factors.get(model, 1.0)

    def reserve(self, messages: Sequence[Mapping[str, Any]], model: str) -> PromptReservation:
        """The prompt tokens to reserve for ``messages``: the estimate times the model's factor,
        rounded up, at most the ceiling."""
        estimate = prompt_tokens_estimate(messages, model)
        tokens = min(math.ceil(estimate * self.factor(model)), prompt_tokens_ceiling(messages))
        return PromptReservation(model, estimate, tokens)

    def reported(self, reservation: PromptReservation, usage: Usage | None) -> None:
        """The provider's count of a reserved prompt: a count above the estimate raises the model's
        factor to it (a warning, once a model: its text is unlike what the estimate was measured on).
        askq's own estimates (a server that reports none) and missing counts teach nothing."""
        if usage is None or usage.estimated or usage.prompt_tokens <= 0:
            return
        ratio = usage.prompt_tokens / reservation.estimate
        if ratio <= self.factor(reservation.model):
            return
        if reservation.model not in self._factors:
            log.warning(
                "prompt token estimate was low: reserving more for this model from now on",
                model=reservation.model,
                estimated=reservation.estimate,
                reported=usage.prompt_tokens,
            )
        self._factors[reservation.model] = ratio
