"""A server of embeddings apart from the chat provider (ASKQ_EMBEDDINGS_BASE_URL): llama-server with
--embeddings, and vLLM, serve one or the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from askq.stack import simulator_process
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, results, run_burst_worker
from tests.knowledge_helpers import menu_config, questions_file
from worker.knowledge.build import build_base


@pytest.fixture
def embeddings_server(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A second simulator for embeddings; the chat one (``sim``) refuses them, as llama-server does."""
    with simulator_process("--ttft-ms", "0", "--tokens-per-s", "0") as base_url:
        monkeypatch.setenv("ASKQ_EMBEDDINGS_BASE_URL", base_url)
        sim.configure(embeddings=False)
        yield Simulator(base_url)


async def test_a_base_is_built_and_used_through_the_embeddings_server(
    redis: Redis, redis_url: str, sim: Simulator, embeddings_server: Simulator, tmp_path: Path
) -> None:
    """Build and questions embed at ASKQ_EMBEDDINGS_BASE_URL; the answers come from the chat provider."""
    config = menu_config(tmp_path)
    report = await build_base(redis, config, "menu")
    assert embeddings_server.stats()["embedding_inputs"] == report.chunks
    await submit_file(
        redis, questions_file(tmp_path / "q.jsonl", ["wifi", "hours"]), config, batch="e", job_type="menu"
    )
    await run_burst_worker(config, redis_url)
    rows = await results(redis, "e")
    assert [(row.status, bool(row.sources)) for row in rows] == [("succeeded", True)] * 2
    assert embeddings_server.stats()["embedding_inputs"] == report.chunks + 2
    assert embeddings_server.stats()["requests_total"] == 0  # no chat there
    assert sim.stats()["embedding_requests"] == 0  # none to the chat provider, which has none
    assert sim.stats()["requests_total"] == 2


async def test_a_bad_embeddings_url_is_one_line_naming_its_variable(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL the client cannot use is refused by name before anything is sent."""
    config_path = tmp_path / "jobs.yaml"
    menu_config(tmp_path)
    config_path.write_text('knowledge:\n  menu:\n    files: "kb/menu/**/*.md"\n', encoding="utf-8")
    shown = askq(
        "knowledge", "build", "menu",
        env={"ASKQ_CONFIG": str(config_path), "ASKQ_EMBEDDINGS_BASE_URL": "ftp://example/v1"},
    )  # fmt: skip
    assert shown.returncode == 1
    assert shown.stderr.startswith("askq: ASKQ_EMBEDDINGS_BASE_URL=ftp://example/v1: expected an http://")
