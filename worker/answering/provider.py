"""The narrow seam to the LLM provider: one ``AsyncOpenAI`` client behind ``ainvoke`` and ``astream``.

Both build their request in ``_create_args``; tests drive them against the simulator over real HTTP.
``astream`` reads the body raw (``worker.answering.sse``), since typing every chunk costs more than the rest
of a job. It sends through ``client.post``, the client's documented way to make a raw request:
``create`` would first walk the whole request through openai's TypedDict transform, which
py-spy showed as an eighth of a worker's CPU on short answers, for a body that is already plain
JSON. Everything else (base URL, headers, auth, timeouts, status errors) is the client's own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from common.config import QA_SYSTEM_PROMPT
from common.errors import FatalProviderError, ProviderError, StreamCutError
from worker.answering.provider_errors import translate
from worker.answering.sse import StreamPiece, stream_pieces

_CHAT_PATH = "/chat/completions"

OnHeaders = Callable[[Mapping[str, str], int], None]
"""Told a response's headers and status before its body: an answer's, or a refusal's."""


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[dict[str, Any]]
    model: str
    params: dict[str, Any] = field(default_factory=dict)


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
        """The whole answer at once, through the typed client: one object per call is cheap."""
        try:
            response = await self.client.chat.completions.create(**self._create_args(question))
        except openai.OpenAIError as exc:
            raise translate(exc) from exc
        return response.choices[0].message.content or ""

    async def astream(
        self, question: str | ChatRequest, on_headers: OnHeaders | None = None
    ) -> AsyncGenerator[StreamPiece, None]:
        """The answer as it is generated; the last piece carries the finish reason and usage.

        The body is read raw and parsed lean (``worker.answering.sse``). A stream that ends without a finish
        reason was cut: it raises rather than pass as an answer. ``on_headers`` hears the response's
        headers first (its rate limits), a refusal's too.
        """
        body = {**self._create_args(question), "stream": True, "stream_options": {"include_usage": True}}
        try:
            # cast_to=httpx2.Response: the client hands the response back unread, statuses checked.
            response = await self.client.post(
                _CHAT_PATH, cast_to=httpx2.Response, body=body, stream=True, stream_cls=None
            )
            if on_headers is not None:
                on_headers(response.headers, response.status_code)
            try:
                async for piece in stream_pieces(response.aiter_bytes()):
                    yield piece
            finally:
                await response.aclose()
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            if on_headers is not None and isinstance(exc, openai.APIStatusError):
                on_headers(exc.response.headers, exc.status_code)
            raise translate(exc) from exc
        except StreamCutError as cut:
            if cut.events:
                raise
            # A 200 with no answer at all is how llama-cpp-python refuses a prompt past the context
            # when streaming: asked again without streaming, it says why (a refusal is fatal).
            try:
                await self.ainvoke(question)
            except FatalProviderError as refusal:
                raise refusal from cut
            except ProviderError:
                pass  # no reason learned: the empty stream is a cut like any other
            raise

    def _create_args(self, question: str | ChatRequest) -> dict[str, Any]:
        request = self.request(question)
        messages = cast(list[ChatCompletionMessageParam], list(request.messages))
        return {"model": request.model, "messages": messages, **request.params}
