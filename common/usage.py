"""Token usage as the provider reports it, or as askq estimates it when the provider reports none."""

from __future__ import annotations

from typing import Any

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

CUT_AT_MAX_TOKENS = "length"
"""The finish_reason of an answer that ended at ``max_tokens``: whole as stored, cut as written."""


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool | None = None
    """True when askq estimated the counts because the provider reported none (llama-cpp-python
    ignores ``stream_options``): never a zero passed off as a count. Absent (None) for provider
    figures, so a reported usage costs no byte more in a record."""
    cached_tokens: int | None = Field(
        default=None,
        validation_alias=AliasChoices("cached_tokens", AliasPath("prompt_tokens_details", "cached_tokens")),
    )
    """Of ``prompt_tokens``, those the provider read from its prompt cache (billed at the cached-input
    price): OpenAI's ``prompt_tokens_details.cached_tokens``, stored flat. Absent (None) when the
    provider sent no such count, so a usage without one is stored as before."""

    @field_validator("cached_tokens", mode="wrap")
    @classmethod
    def _unreadable_count_is_no_count(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> int | None:
        # A detail, not the usage: a server that fills it with something else ("n/a") must not make
        # every answer unreadable, as a bad prompt_tokens does. Its prompt is then priced in full.
        try:
            count: int | None = handler(value)
        except ValidationError:
            return None
        return count

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            estimated=True if self.estimated or other.estimated else None,
            cached_tokens=_sum_or_none(self.cached_tokens, other.cached_tokens),
        )

    def to_json(self) -> str:
        """The stored form: ``estimated`` only when it is so."""
        return self.model_dump_json(exclude_none=True)


def _sum_or_none(first: int | None, second: int | None) -> int | None:
    """A count that neither side reported stays unreported; one side's count is the sum's."""
    if first is None and second is None:
        return None
    return (first or 0) + (second or 0)
