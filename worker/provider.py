"""The narrow seam to the LLM provider: one ``AsyncOpenAI`` client behind ``ainvoke`` and ``astream``.

Everything that touches the network goes through ``get_response``; tests drive it against the
simulator over real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from common.config import QA_SYSTEM_PROMPT
from common.errors import RetryableProviderError
from common.usage import Usage
from worker.provider_errors import translate


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[dict[str, Any]]
    model: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamPiece:
    """One step of a streamed answer: text, or the end with its finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatProvider:
    """A plain question is sent with ``system_prompt`` to ``model``; a ``ChatRequest`` goes as it is."""

    def __init__(
        self, client: AsyncOpenAI, *, model: str = "gpt-4o-mini", system_prompt: str = QA_SYSTEM_PROMPT
    ) -> None:
        self.client = client
        self.model = model
        self.system_prompt = system_prompt

    @property
    def endpoint(self) -> str:
        """Host and port of the provider: what its rate limits, and so askq's cooldown, are shared by."""
        url = self.client.base_url
        return f"{url.host}:{url.port}" if url.port else str(url.host)

    def request(self, question: str | ChatRequest) -> ChatRequest:
        if isinstance(question, ChatRequest):
            return question
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": question}]
        return ChatRequest(messages=messages, model=self.model)

    async def ainvoke(self, question: str | ChatRequest) -> str:
        """The whole answer at once."""
        response = await self.get_response(question, stream=False)
        assert isinstance(response, ChatCompletion)
        return response.choices[0].message.content or ""

    async def astream(self, question: str | ChatRequest) -> AsyncIterator[StreamPiece]:
        """The answer as it is generated; the last piece carries the finish reason and usage.

        A stream that ends without a finish reason was cut: it raises rather than pass as an answer.
        """
        response = await self.get_response(question, stream=True)
        assert isinstance(response, AsyncStream)
        finish_reason: str | None = None
        usage: Usage | None = None
        try:
            async with response:
                async for chunk in response:
                    if chunk.usage is not None:
                        usage = Usage.model_validate(chunk.usage.model_dump())
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield StreamPiece(text=choice.delta.content)
                        if choice.finish_reason is not None:
                            finish_reason = choice.finish_reason
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise translate(exc) from exc
        if finish_reason is None:
            raise RetryableProviderError("stream ended without a finish_reason")
        yield StreamPiece(finish_reason=finish_reason, usage=usage)

    async def get_response(
        self, question: str | ChatRequest, *, stream: bool
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """The one call to the provider: a ``ChatCompletion``, or an ``AsyncStream`` when ``stream``."""
        request = self.request(question)
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
        try:
            return await self.client.chat.completions.create(
                model=request.model,
                messages=cast(list[ChatCompletionMessageParam], list(request.messages)),
                stream=stream,
                **request.params,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise translate(exc) from exc
