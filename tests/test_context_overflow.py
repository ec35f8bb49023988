"""A prompt longer than the model's context: refused at submit when the estimate says so, and a job
the server refuses ends at once with that reason, not after every attempt as a cut stream."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import ContextOverflowError
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, results, run_burst_worker
from worker.answering.overflow import context_overflow
from worker.answering.provider import ChatProvider, ChatRequest

LONG_QUESTION = "Please read this and answer briefly. " * 40
"""About 1,500 characters: some 370 tokens by the simulator's count, past a context of 100."""
REASON = "the prompt is longer than the model's context ("


def _request(question: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": question}], model="gpt-4o-mini")


@pytest.fixture
async def provider(sim: Simulator) -> ChatProvider:  # type: ignore[misc]
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sim", max_retries=0)
    yield ChatProvider(client)  # type: ignore[misc]
    await client.close()


class TestTheServersRefusal:
    async def test_an_empty_stream_is_asked_again_unstreamed_to_learn_why(
        self, sim: Simulator, provider: ChatProvider
    ) -> None:
        """A 200 with an empty stream becomes ContextOverflowError once the unstreamed call says 400
        context_length_exceeded, with the provider's message in it."""
        sim.configure(context_tokens=100)
        with pytest.raises(ContextOverflowError) as raised:
            [piece async for piece in provider.astream(_request(LONG_QUESTION))]
        assert str(raised.value).startswith(REASON)
        assert "maximum context length is 100 tokens" in str(raised.value)
        assert raised.value.status_code == 400

    async def test_an_unstreamed_refusal_is_a_context_overflow(
        self, sim: Simulator, provider: ChatProvider
    ) -> None:
        """The 400 context_length_exceeded of a call without streaming is ContextOverflowError too."""
        sim.configure(context_tokens=100)
        with pytest.raises(ContextOverflowError, match="the prompt is longer than the model's context"):
            await provider.ainvoke(_request(LONG_QUESTION))

    async def test_a_job_past_the_context_ends_at_once_with_the_reason(
        self, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
    ) -> None:
        """The job fails after at most two attempts, saying the prompt is longer than the context."""
        sim.configure(context_tokens=100)
        path = write("q.jsonl", json.dumps({"id": "long", "question": LONG_QUESTION}) + "\n")
        await submit_file(redis, path, config, batch="ctx")
        await run_burst_worker(config, redis_url)
        [row] = await results(redis, "ctx")
        assert row.status == "failed"
        assert row.error is not None
        assert row.error.startswith(REASON), row.error
        assert row.attempts <= 2
        assert sim.stats()["requests_total"] <= 4  # each attempt: its stream, then the question why


OVERFLOW_BODIES: dict[str, tuple[int, dict[str, Any]]] = {
    "openai, llama-cpp-python": (
        400,
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, your "
                "messages resulted in 130000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    ),
    "llama-server": (
        400,
        {
            "error": {
                "code": 400,
                "message": "request (12437 tokens) exceeds the available context size (4096 tokens), "
                "try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 12437,
                "n_ctx": 4096,
            }
        },
    ),
    "llama-server 2025": (
        500,
        {
            "error": {
                "code": 500,
                "message": "the request exceeds the available context size. try increasing the "
                "context size or enable context shift",
                "type": "exceed_context_size_error",
            }
        },
    ),
    "vllm": (
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 4096 tokens. However, you requested "
            "5000 tokens (4000 in the messages, 1000 in the completion).",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
    ),
}
"""Refusal bodies as each server sends them for a prompt past its context."""


class TestRecognisedMessages:
    @pytest.mark.parametrize("server", sorted(OVERFLOW_BODIES))
    def test_each_servers_overflow_is_recognised(self, server: str) -> None:
        """OpenAI's, llama-server's (400 and older 500), llama-cpp-python's and vLLM's overflow bodies
        are a context overflow, carrying the server's message."""
        status, body = OVERFLOW_BODIES[server]
        error = context_overflow(status, body)
        assert isinstance(error, ContextOverflowError)
        assert str(error).startswith(REASON)
        assert "context" in str(error)[len(REASON) :]

    def test_other_refusals_are_not(self) -> None:
        """A 400 about something else, or a 429 about tokens per minute, is not a context overflow."""
        bad = {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}
        assert context_overflow(400, bad) is None
        limit = {"error": {"message": "Rate limit reached for tokens per min", "code": "rate_limit_exceeded"}}
        assert context_overflow(429, limit) is None


DENSE_LINE = (
    "매출 보고서 2024년 3분기: 서울 지점의 매출은 전년 대비 증가했습니다. "
    "rows = [(1024, 3.14159), (2048, 2.71828)]; total += row[0] * 0.875\n"
    "12437,4096,16384,65536,131072,262144,524288,1048576\n"
)


def test_a_dense_prompt_a_bytes_estimate_let_through_is_refused_at_submit(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """About 16 KB of Korean, code and numbers, which 4 bytes a token put under a 4,096-token context,
    is refused by the submit check, naming the file and line."""
    question = (DENSE_LINE * 200)[:12_000].replace("\n", " ")
    assert len(question.encode()) // 4 <= 4096  # what the old estimate let through
    path = write("dense.jsonl", json.dumps({"id": "dense", "question": question}, ensure_ascii=False) + "\n")
    jobs = write("jobs.yaml", "provider:\n  context_tokens: 4096\n")
    done = askq("submit", str(path), "--batch", "dense", env={"ASKQ_CONFIG": str(jobs)})
    assert done.returncode != 0
    assert "dense.jsonl: line 1: the question is about" in done.stderr
    assert "beyond the model's context of 4,096" in done.stderr
