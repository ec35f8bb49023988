"""askq against a real llama.cpp server (llama-cpp-python's, Gemma 3 270M) started on its own defaults.

Those defaults are the hard case: one request at a time, a running stream cut with ``[DONE]`` and no
finish_reason whenever another request waits (``--interrupt_requests True``), and no usage chunk.
askq runs at its own defaults (32 calls in flight) and must still answer every question.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from producer.submit import submit_file
from tests.helpers import askq, eventually, results, run_burst_worker
from tests.llama_server import LlamaServer, model_path, serving

MAX_TOKENS = 48
KOREAN = "대한민국의 수도는 어디인가요? 한 문장으로 답하세요."
QUESTIONS = [
    {"id": "ko", "question": KOREAN},
    {"id": "en", "question": "Name three primary colours."},
    {"id": "short", "question": "Describe the sea in detail.", "max_tokens": 4},
    {"id": "math", "question": "What is 12 plus 30?"},
]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with serving(tmp_path_factory.mktemp("llama")) as server:
        yield server


@pytest.fixture
def provider(llama: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> LlamaServer:
    monkeypatch.setenv("OPENAI_BASE_URL", llama.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return llama


def _config() -> AskqConfig:
    """askq's defaults, but for what the server is: its context, a short answer, greedy decoding."""
    return parse_config(
        {
            "provider": {"model": "gemma-3-270m", "max_tokens": MAX_TOKENS, "context_tokens": 2048},
            "stream": {"keep_ended_events": True},
        }
    )


async def _submit(redis: Redis, write: Any, batch: str, questions: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions)
    await submit_file(redis, write(f"{batch}.jsonl", lines), _config(), batch=batch)


async def _unstreamed(base_url: str, question: str) -> str:
    """The server's own answer to the question, asked as askq asks it but without streaming."""
    config = _config()
    messages = [
        {"role": "system", "content": config.job_type("qa").system_prompt},
        {"role": "user", "content": question},
    ]
    async with AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0) as client:
        response = await client.chat.completions.create(
            model="gemma-3-270m",
            messages=messages,
            temperature=0,
            max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
        )
    return response.choices[0].message.content or ""


class TestAgainstLlamaCpp:
    async def test_a_batch_at_askq_defaults_is_answered_whole(
        self, redis: Redis, redis_url: str, provider: LlamaServer, write: Any
    ) -> None:
        """Korean text byte-exact, usage estimated and marked so, truncated answers counted as such, and
        every job answered although the server cuts streams whenever a second request waits."""
        await _submit(redis, write, "llama", QUESTIONS)
        await run_burst_worker(_config(), redis_url)
        rows = {row.item_id: row for row in await results(redis, "llama")}
        assert {item: row.status for item, row in rows.items()} == dict.fromkeys(rows, "succeeded")
        assert rows["ko"].answer == await _unstreamed(provider.base_url, KOREAN)
        assert rows["short"].finish_reason == "length"
        # Gemma 3 270M rambles to max_tokens on most questions: status counts each answer cut there.
        truncated = sum(row.finish_reason == "length" for row in rows.values())
        assert json.loads(askq("status", "llama", "--json").stdout)["truncated"] == truncated
        for row in rows.values():
            assert row.usage is not None
            assert row.usage["estimated"] is True  # the server sends no usage chunk: never a plain 0
            assert row.usage["completion_tokens"] > 0

    async def test_a_server_killed_and_started_again_mid_batch_loses_no_job(
        self, redis: Redis, redis_url: str, provider: LlamaServer, write: Any
    ) -> None:
        """kill -9 mid-batch and a restart a few seconds later: every job is answered, without retry."""
        questions = [{"id": f"q{n}", "question": f"Count from {n} to {n + 5}."} for n in range(8)]
        await _submit(redis, write, "crash", questions)
        worker = asyncio.create_task(run_burst_worker(_config(), redis_url))
        await eventually(lambda: _answered(redis, "crash", 2), timeout_s=120)
        provider.kill()
        await asyncio.to_thread(provider.start)  # model load: a few seconds down, refused meanwhile
        await asyncio.wait_for(worker, timeout=300)
        rows = await results(redis, "crash")
        assert [row.status for row in rows] == ["succeeded"] * len(questions)


async def _answered(redis: Redis, batch: str, count: int) -> bool:
    return sum(row.status == "succeeded" for row in await results(redis, batch)) >= count


def test_the_model_is_assembled_once(tmp_path: Path) -> None:
    """The GGUF is cached outside the test run and checked: a second look costs no new copy."""
    first = model_path()
    mtime = first.stat().st_mtime_ns
    assert model_path() == first
    assert first.stat().st_mtime_ns == mtime
