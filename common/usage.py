"""Token usage as the provider reports it, or as askq estimates it when the provider reports none."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            estimated=True if self.estimated or other.estimated else None,
        )

    def to_json(self) -> str:
        """The stored form: ``estimated`` only when it is so."""
        return self.model_dump_json(exclude_none=True)
