"""Answering with knowledge: real workers, the simulator's embeddings and chat, a base built in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.events import EventType
from common.knowledge import not_built
from producer.results import write_results
from producer.retry import retry_batch
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import eventually, keeping_events, logged_events, results, run_burst_worker
from tests.knowledge_helpers import (
    FILES,
    MENU_PROMPT,
    QUESTIONS,
    build_base,
    menu_config,
    questions_file,
)
from worker.knowledge import cache
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings


async def test_each_question_gets_its_planted_chunk_in_its_prompt(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Each prompt sent carries, first, the chunk that answers its question, under its source line."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    sim.configure(record_requests=True)
    await _submit(redis, config, tmp_path / "q.jsonl", "menu", "menu")
    await run_burst_worker(config, redis_url)
    prompts = {request["user"]: request["system"] for request in sim.requests()}
    assert len(prompts) == len(QUESTIONS)
    for question, file in QUESTIONS.values():
        prompt = prompts[question]
        assert prompt.startswith(
            MENU_PROMPT.removesuffix("{knowledge}") + f"[1] {file} (chunk 0)\n{FILES[file][0]}"
        )
        assert "{knowledge}" not in prompt
        assert prompt.count("\n\n[2] ") == 1  # top_k 2: two chunks, separated by a blank line
    rows = {row.item_id: row for row in await results(redis, "menu")}
    for key, (_, file) in QUESTIONS.items():
        assert rows[key].status == "succeeded"
        # The simulator answers a prompt with numbered sources by quoting the sentence closest to the question
        assert FILES[file][0].split(". ")[0] in (rows[key].answer or "")
        assert rows[key].sources is not None
        assert [(source.file, source.chunk) for source in rows[key].sources][:1] == [(file, 0)]
        assert len(rows[key].sources) == 2
        assert rows[key].sources[0].score > rows[key].sources[1].score


async def test_sources_are_logged_before_the_first_start_and_stored_with_the_result(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """The job's events begin with one sources event (before its start and any delta), as stored."""
    config = keeping_events(menu_config(tmp_path))
    await build_base(redis, config)
    await _submit(redis, config, tmp_path / "q.jsonl", "ev", "menu", ["wifi"])
    await run_burst_worker(config, redis_url)
    events = await logged_events(redis, "ev:wifi")
    types = [event.type for event in events]
    assert types[:2] == [EventType.SOURCES, EventType.START]
    assert types.count(EventType.SOURCES) == 1
    assert EventType.DELTA in types
    assert types[-1] is EventType.DONE
    [row] = await results(redis, "ev")
    assert events[0].sources == row.sources
    assert events[0].sources is not None
    assert events[0].sources[0].file == "kb/menu/wifi.md"


async def test_results_lines_carry_sources_for_knowledge_jobs_only(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """JSONL results have a sources array (file, chunk, score) for a knowledge job; a plain job has none."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    await _submit(redis, config, tmp_path / "k.jsonl", "k", "menu", ["hours"])
    await _submit(redis, config, tmp_path / "p.jsonl", "p", "qa", ["hours"])
    await run_burst_worker(config, redis_url)
    lines = {}
    for batch in ("k", "p"):
        out = io.StringIO()
        await write_results(redis, batch, out)
        lines[batch] = json.loads(out.getvalue())
    sources = lines["k"]["sources"]
    assert [(source["file"], source["chunk"]) for source in sources][:1] == [("kb/menu/hours.md", 0)]
    assert set(sources[0]) == {"file", "chunk", "score"}
    assert 0 < sources[0]["score"] <= 1
    assert "sources" not in lines["p"]
    batch_api = io.StringIO()
    await write_results(redis, "k", batch_api, "openai-batch")
    assert json.loads(batch_api.getvalue())["sources"] == sources  # an extra key of that format's line


async def test_a_job_whose_base_is_not_built_fails_without_calling_chat(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A base gone after the submit fails its jobs with the advice to build it: no chat call, no answer."""
    config = keeping_events(menu_config(tmp_path))
    meta = await build_base(redis, config)
    await _submit(redis, config, tmp_path / "q.jsonl", "nb", "menu", ["price"])
    await redis.delete(keys.knowledge_meta("menu"), keys.knowledge_data("menu", meta.version))
    sim.reset()
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "nb")
    assert (row.status, row.error, row.error_code) == ("failed", not_built("menu"), "knowledge")
    assert row.error == "knowledge base 'menu' is not built: run `askq knowledge build menu`"
    assert row.answer is None
    assert row.sources is None
    stats = sim.stats()
    assert (stats["requests_total"], stats["embedding_requests"]) == (0, 0)
    types = [event.type for event in await logged_events(redis, "nb:price")]
    assert types == [EventType.FAILED]


async def test_an_index_built_for_another_dimension_fails_the_job_with_the_reason(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """jobs.yaml asking for 512 dimensions where the index has 256 fails the job with both named, no chat."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    await _submit(redis, config, tmp_path / "q.jsonl", "mm", "menu", ["price"])
    changed = menu_config(tmp_path, dimensions=512)
    sim.reset()
    await run_burst_worker(changed, redis_url)
    [row] = await results(redis, "mm")
    assert (row.status, row.error_code) == ("failed", "knowledge")
    assert row.error == (
        "knowledge base 'menu' was built with text-embedding-3-small at 256 dimensions, but jobs.yaml asks "
        "for text-embedding-3-small at 512 dimensions: run `askq knowledge build menu` (or, if the base "
        "was rebuilt for a newer jobs.yaml, restart the workers still running the old one)"
    )
    assert sim.stats()["requests_total"] == 0


async def test_an_embeddings_failure_fails_the_job_with_the_providers_error(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A provider that stops serving /embeddings fails the job with its 404, never answering without it."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    await _submit(redis, config, tmp_path / "q.jsonl", "ef", "menu", ["price"])
    sim.configure(embeddings=False)
    sim.reset()
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "ef")
    assert (row.status, row.error_code) == ("failed", "404")
    assert "has no /embeddings endpoint (HTTP 404)" in (row.error or "")
    assert sim.stats()["requests_total"] == 0


async def test_a_batch_api_line_gets_the_filled_prompt_first_and_retrieves_by_its_last_user_message(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A line with its own messages: the job type's filled prompt goes before its own system message."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    sim.configure(record_requests=True)
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi, what would you like?"},
            {"role": "user", "content": QUESTIONS["wifi"][0]},
        ],
    }
    line = {"custom_id": "w", "method": "POST", "url": "/v1/chat/completions", "body": body}
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    await submit_file(redis, path, config, batch="ba", job_type="menu")
    await run_burst_worker(config, redis_url)
    [request] = sim.requests()
    prompt, own = request["system"].rsplit("\n", 1)
    assert prompt.startswith(MENU_PROMPT.removesuffix("{knowledge}") + "[1] kb/menu/wifi.md (chunk 0)")
    assert own == "Answer in one sentence."
    [row] = await results(redis, "ba")
    assert row.sources is not None
    assert row.sources[0].file == "kb/menu/wifi.md"


async def test_jobs_running_at_once_share_embeddings_requests(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """40 questions at concurrency 40 share embeddings requests: 10 or fewer, several texts each."""
    config = menu_config(tmp_path, limits={"concurrency": 40})
    await build_base(redis, config)
    sim.reset()
    sim.configure(record_requests=True)
    questions = [json.dumps({"id": f"q{n}", "question": f"Is item {n} on the menu?"}) for n in range(40)]
    (tmp_path / "many.jsonl").write_text("\n".join(questions) + "\n", encoding="utf-8")
    await submit_file(redis, tmp_path / "many.jsonl", config, batch="mb", job_type="menu")
    await run_burst_worker(config, redis_url)
    assert all(row.status == "succeeded" for row in await results(redis, "mb"))
    stats, requests = sim.stats(), sim.embeddings()
    assert stats["embedding_inputs"] == 40
    assert stats["embedding_requests"] <= 10, stats  # 4 questions a request or more, on average
    assert max(len(request["inputs"]) for request in requests) > 1
    assert sorted(text for request in requests for text in request["inputs"]) == sorted(
        f"Is item {n} on the menu?" for n in range(40)
    )


async def test_a_running_worker_answers_from_a_rebuilt_base(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that answered from one version answers from the next once the base is rebuilt."""
    monkeypatch.setattr(cache, "CHECK_EVERY_S", 0.0)  # looks at the meta every question: no waiting here
    config = menu_config(tmp_path)
    await build_base(redis, config)
    sim.configure(record_requests=True)
    worker = AskqWorker(**{**worker_settings(config, url=redis_url), "handle_signals": False})
    running = asyncio.create_task(worker.main())
    try:
        await _submit(redis, config, tmp_path / "a.jsonl", "a", "menu", ["wifi"])
        await eventually(lambda: _ended(redis, "a"), timeout_s=30)
        rebuilt = {**FILES, "kb/menu/wifi.md": ["The wifi password is sunrise77 since the rebuild."]}
        await build_base(redis, config, rebuilt)
        await _submit(redis, config, tmp_path / "b.jsonl", "b", "menu", ["wifi"])
        await eventually(lambda: _ended(redis, "b"), timeout_s=30)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
    first, second = (request["system"] for request in sim.requests())
    assert ("moonlight42" in first, "sunrise77" in first) == (True, False)
    assert ("moonlight42" in second, "sunrise77" in second) == (False, True)


async def _submit(
    redis: Redis, config: AskqConfig, path: Path, batch: str, job_type: str, names: list[str] | None = None
) -> None:
    await submit_file(redis, questions_file(path, names), config, batch=batch, job_type=job_type)


async def _ended(redis: Redis, batch: str) -> bool:
    return all(row.status == "succeeded" for row in await results(redis, batch))


async def test_a_failed_knowledge_job_keeps_its_sources_until_a_retry_runs_it_again(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A job refused after retrieving stores its sources; askq retry clears them; its re-run stores them."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "x", "question": "What is the wifi password? [sim:400]"}) + "\n")
    await submit_file(redis, path, config, batch="rt", job_type="menu")
    await run_burst_worker(config, redis_url)
    [failed] = await results(redis, "rt")
    assert (failed.status, failed.error_code) == ("failed", "400")
    assert failed.sources is not None
    assert failed.sources[0].file == "kb/menu/wifi.md"
    assert await retry_batch(redis, "rt", config) == 1
    [queued] = await results(redis, "rt")
    assert (queued.status, queued.sources) == ("queued", None)
    await run_burst_worker(config, redis_url)
    [again] = await results(redis, "rt")
    assert again.sources == failed.sources


async def test_a_knowledge_job_waits_out_a_provider_restart_without_spending_attempts(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """With one attempt allowed, a job whose question is embedded while the server is down succeeds."""
    config = menu_config(tmp_path, retry={"attempts": 1})
    await build_base(redis, config)
    await _submit(redis, config, tmp_path / "q.jsonl", "away", "menu", ["wifi"])
    sim.down(2)
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "away")
    assert (row.status, row.attempts) == ("succeeded", 1)
    assert row.sources
