"""Knowledge bases against a real llama.cpp server: llama-cpp-python's, with Gemma 3 270M and
``--embedding True``, one server for chat and embeddings, as a user would run it.

Its embeddings differ from OpenAI's in two ways askq must take: one vector per token for a chat model
(no pooling; askq takes their mean), and ``encoding_format: base64`` ignored (floats come back).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from askq.demo import MENU_QUESTIONS, with_menu
from common.config import AskqConfig, parse_config
from common.knowledge_store import read_chunks
from producer.submit import submit_file
from tests.helpers import results, run_burst_worker
from tests.llama_server import LlamaServer, serving
from worker.knowledge.build import build_base
from worker.knowledge.index_store import load_index
from worker.knowledge.search import search_base

GEMMA_WIDTH = 640
"""Gemma 3 270M's hidden size: the width of its (pooled) vectors."""

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with serving(tmp_path_factory.mktemp("llama-embed"), "--embedding", "True") as server:
        yield server


@pytest.fixture
def menu(llama: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> AskqConfig:
    """The demo's café menu as base ``menu``, and askq pointed at the server."""
    monkeypatch.setenv("OPENAI_BASE_URL", llama.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    raw: dict[str, Any] = {
        "provider": {"model": "gemma-3-270m", "max_tokens": 32, "context_tokens": 2048},
        "retry": {"attempts": 3, "initial_wait_s": 0.1, "max_wait_s": 0.5, "jitter_s": 0.1},
    }
    config = with_menu(parse_config(raw))
    base = config.knowledge["menu"].model_copy(update={"embedding_model": "gemma-3-270m"})
    return config.model_copy(update={"knowledge": {"menu": base}})


async def test_a_base_built_on_llama_cpp_finds_each_chunk_by_its_own_text(
    redis: Redis, menu: AskqConfig
) -> None:
    """Built through the server's /v1/embeddings (token vectors pooled): a chunk's own text finds it first."""
    report = await build_base(redis, menu, "menu")
    assert report.dimensions == GEMMA_WIDTH
    assert report.chunks == report.chunks_embedded > 3
    index = await load_index(redis, "menu")
    chunks = await read_chunks(redis, index.meta, list(range(index.meta.chunks)))
    for row, chunk in enumerate(chunks):
        assert chunk is not None
        _, found = await search_base(redis, menu, "menu", chunk.text, 1)
        assert found[0].chunk == chunk, f"row {row}"
        assert found[0].score == pytest.approx(1.0, abs=1e-3)
    again = await build_base(redis, menu, "menu")
    assert (again.up_to_date, again.requests) == (True, 0)


async def test_a_knowledge_question_is_answered_by_the_real_model_with_its_sources(
    redis: Redis, redis_url: str, menu: AskqConfig
) -> None:
    """The whole path on the real server: question embedded, chunks in the prompt, answer, sources."""
    await build_base(redis, menu, "menu")
    await submit_file(redis, MENU_QUESTIONS, menu, batch="cafe", job_type="menu")
    await run_burst_worker(menu, redis_url)
    rows = await results(redis, "cafe")
    assert [row.status for row in rows] == ["succeeded"] * len(rows)
    for row in rows:
        assert row.answer
        assert row.sources is not None
        assert len(row.sources) == menu.job_types["menu"].top_k
        assert all(source.file.startswith("knowledge/menu/") for source in row.sources)
        assert row.sources[0].score >= row.sources[-1].score


def test_the_menu_questions_exist() -> None:
    """The demo's café questions ship with the package, for this test and the demo."""
    assert Path(MENU_QUESTIONS).is_file()
