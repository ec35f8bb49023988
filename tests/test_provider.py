"""The provider seam: ainvoke and astream driven against the simulator."""

from __future__ import annotations

import openai
import pytest

from common.errors import FatalProviderError, RetryableProviderError
from tests.conftest import Simulator
from worker.answering.provider import ChatProvider, ChatRequest


def _request(question: str, **params: object) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": question}], model="gpt-4o-mini", params=dict(params)
    )


@pytest.fixture
async def provider(sim: Simulator) -> ChatProvider:  # type: ignore[misc]
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0)
    yield ChatProvider(client)  # type: ignore[misc]
    await client.close()


async def test_ainvoke_and_astream_give_the_same_answer(provider: ChatProvider) -> None:
    """The streamed pieces join to the non-streamed answer; the last piece carries finish reason and usage."""
    whole = await provider.ainvoke(_request("Same either way?"))
    pieces = [piece async for piece in provider.astream(_request("Same either way?"))]
    assert "".join(piece.text for piece in pieces) == whole
    assert pieces[-1].finish_reason == "stop"
    assert pieces[-1].usage is not None
    assert pieces[-1].usage.completion_tokens == 24


async def test_a_plain_question_gets_the_qa_system_prompt_and_default_model(provider: ChatProvider) -> None:
    """ainvoke("...") wraps the question with the qa system prompt, as the seed design's ainvoke does."""
    request = provider.request("What is askq?")
    assert request.model == "gpt-4o-mini"
    assert request.messages[0]["role"] == "system"
    assert "do not know" in request.messages[0]["content"]
    assert "What is askq?" in await provider.ainvoke("What is askq?")


async def test_max_tokens_is_passed_through(provider: ChatProvider) -> None:
    """Request parameters reach the provider: max_tokens truncates with finish_reason length."""
    pieces = [piece async for piece in provider.astream(_request("Long one", max_tokens=5))]
    assert pieces[-1].finish_reason == "length"
    assert pieces[-1].usage
    assert pieces[-1].usage.completion_tokens == 5


@pytest.mark.parametrize(
    ("directive", "error", "status"),
    [
        ("429@0.25", RetryableProviderError, 429),
        ("500", RetryableProviderError, 500),
        ("cut", RetryableProviderError, None),
        ("error", RetryableProviderError, None),
        ("nofinish", RetryableProviderError, None),
        ("400", FatalProviderError, 400),
        ("404", FatalProviderError, 404),
        ("422", FatalProviderError, 422),
    ],
)
async def test_faults_are_classified(
    provider: ChatProvider, directive: str, error: type[Exception], status: int | None
) -> None:
    """Each provider fault becomes a retryable or a fatal error with its status code."""
    with pytest.raises(error) as caught:
        _ = [piece async for piece in provider.astream(_request(f"q [sim:{directive}]"))]
    assert getattr(caught.value, "status_code", None) == status


async def test_retry_after_is_read_from_the_response(provider: ChatProvider) -> None:
    """A 429's retry-after-ms / Retry-After header becomes the error's retry_after_s."""
    with pytest.raises(RetryableProviderError) as caught:
        await provider.ainvoke(_request("q [sim:429@0.25]"))
    assert caught.value.retry_after_s == pytest.approx(0.25)


async def test_unreachable_provider_is_retryable() -> None:
    """A refused connection is a retryable error, not a crash."""
    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:1/v1", api_key="x", max_retries=0)
    with pytest.raises(RetryableProviderError, match="cannot connect"):
        await ChatProvider(client).ainvoke(_request("anyone?"))
    await client.close()
