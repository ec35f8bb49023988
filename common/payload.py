"""The job payload: the one JSON argument of an ``answer`` job, checked by the worker before use."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Request parameters an OpenAI Batch API line may carry that askq passes on unchanged; the worker sets
# `stream` and `stream_options` itself, and `n` > 1 would yield several answers for one question.
PASSED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "response_format",
        "logit_bias",
        "user",
        "reasoning_effort",
        "service_tier",
        "metadata",
        "store",
    }
)
IGNORED_PARAMS = frozenset({"stream", "stream_options", "n"})


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(part.get("text", "")) for part in self.content)


class JobPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    job_id: str = Field(min_length=1)
    batch: str = Field(min_length=1)
    item_id: str = Field(min_length=1)
    job_type: str = Field(min_length=1)
    question: str = Field(min_length=1)
    messages: tuple[ChatMessage, ...] | None = None
    """The whole conversation of an OpenAI Batch API line; otherwise built from the job type."""
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_params(self) -> JobPayload:
        unknown = set(self.params) - PASSED_PARAMS
        if unknown:
            raise ValueError(f"unsupported request parameters: {', '.join(sorted(unknown))}")
        return self
