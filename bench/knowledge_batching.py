"""Micro-batched question embeddings: questions per embeddings request, and answers a second with
knowledge against without, on the latency-bound mix's simulator at concurrency 64.

One redis-server, one simulator with the latency-bound mix's pace (first token after 0.9 s +- 0.1 s,
then 20 tokens at 200/s), and one ``askq worker --concurrency 64`` (so 128 jobs held, as a user
gets). A base of 36 generated Markdown files is built first (``build_base``, what ``askq knowledge
build`` runs). Then the same questions are submitted as batches, one at a time: with the plain job
type and with the job type answering from the base, in rounds whose order alternates (plain first,
then knowledge first), after a warm-up batch that loads the base into the worker. Each batch's rate
runs from its submit to its last job's finish; the embeddings figures are the simulator's
``embedding_requests`` and ``embedding_inputs`` over the batch.
"""

from __future__ import annotations

import asyncio
import functools
import time
import urllib.request
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.knowledge_build import provider_at
from bench.knowledge_corpus import BASE, WORDS, knowledge_config, write_corpus
from bench.mixes import Mix
from bench.procs import askq_workers, cpu_s, wait_listening, write_config
from bench.throughput import job_times, sim_stats, steady_rate
from common import keys
from common.config import AskqConfig, load_config
from common.status import JobState
from producer.batches import BatchStatus, batch_status
from producer.submit import submit_file
from worker.knowledge.build import build_base

CONCURRENCY = 64
QUESTIONS = 1000
ROUNDS = 2
FILES = 36
SECTIONS = 4
PLAIN = "qa"
"""The default job type: a bare system prompt."""
KNOWLEDGE = "guide"


def reset_sim_stats(base_url: str) -> None:
    request = urllib.request.Request(base_url.removesuffix("/v1") + "/_sim/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def questions_file(path: Path, count: int) -> Path:
    """``count`` distinct questions, the same for both job types: two of the corpus's words each (up to
    2,025 pairs) and no number, so that the sentence the simulator quotes from the sources is one of the
    sections' (of 20 words), never a heading ("Topic 3 part 1"): answers as long as without knowledge."""
    pairs = (f"{WORDS[i % len(WORDS)]} and {WORDS[i // len(WORDS) % len(WORDS)]}" for i in range(count))
    path.write_text("".join(f"What does the guide say about {pair}?\n" for pair in pairs), encoding="utf-8")
    return path


def config_document(mix: Mix) -> dict[str, Any]:
    document = {**mix.askq_config(), **knowledge_config(KNOWLEDGE)}
    document["job_types"][PLAIN] = {"system_prompt": "You are a helpful assistant."}
    return document


async def _wait_done(redis: Redis, batch: str) -> BatchStatus:
    while True:
        status = await batch_status(redis, batch, with_job_ids=False, with_latencies=False)
        if status.done:
            return status
        await asyncio.sleep(0.05)  # the finish time comes from the records, not from this poll


async def run_batch(
    redis: Redis,
    config: AskqConfig,
    path: Path,
    job_type: str,
    batch: str,
    *,
    pid: int,
    base_url: str,
    provider_s: float,
) -> dict[str, Any]:
    """One batch of ``path``'s questions as ``job_type``, from its submit to its last finish."""
    reset_sim_stats(base_url)  # the peak of calls in flight is this batch's
    before, cpu_before = sim_stats(base_url), cpu_s(pid)
    started = time.time()
    report = await submit_file(redis, path, config, batch=batch, job_type=job_type)
    status = await _wait_done(redis, batch)
    after, cpu = sim_stats(base_url), cpu_s(pid) - cpu_before
    times = await job_times(redis, await redis.lrange(keys.batch_items(batch), 0, -1))  # type: ignore[misc]
    questions = report.enqueued
    elapsed_s = float(times[:, 1].max()) - started
    requests = after["embedding_requests"] - before["embedding_requests"]
    inputs = after["embedding_inputs"] - before["embedding_inputs"]
    return {
        "job_type": job_type,
        "questions": questions,
        "succeeded": status.counts[JobState.SUCCEEDED],
        "elapsed_s": elapsed_s,
        "questions_per_s": questions / elapsed_s,
        "steady_questions_per_s": steady_rate(times, provider_s),
        "embedding_requests": requests,
        "embedding_inputs": inputs,
        "questions_per_request": inputs / requests if requests else 0.0,
        "worker_cpu_ms_per_question": cpu * 1000 / questions,
        # The simulator's answers quote a source when the prompt has them: its tokens set the call's time.
        "completion_tokens_per_question": status.completion_tokens / questions,
        "max_chat_calls_in_flight": after["max_in_flight"],
    }


async def _rounds(
    redis_url: str, base_url: str, config_path: Path, pid: int, mix: Mix, rounds: int
) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    config = load_config(config_path)
    path = questions_file(config_path.parent / "questions.txt", mix.jobs)
    run = functools.partial(run_batch, redis, config, pid=pid, base_url=base_url, provider_s=mix.provider_s)
    try:
        await wait_listening(redis, 1)
        # The first knowledge job loads the base into the worker: not a cost of answering.
        warm_up = await run(
            questions_file(config_path.parent / "warm-up.txt", 2 * CONCURRENCY), KNOWLEDGE, "warm-up"
        )
        runs = []
        for number in range(1, rounds + 1):
            order = (PLAIN, KNOWLEDGE) if number % 2 else (KNOWLEDGE, PLAIN)
            for job_type in order:
                runs.append({"round": number, **await run(path, job_type, f"{job_type}-{number}")})
    finally:
        await redis.aclose()
    return {"warm_up": warm_up, "runs": runs}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Over every round: each side's questions over its time, their ratio, and questions per request."""
    sides = {
        job_type: [run for run in runs if run["job_type"] == job_type] for job_type in (PLAIN, KNOWLEDGE)
    }
    rate = {
        job_type: sum(run["questions"] for run in side) / sum(run["elapsed_s"] for run in side)
        for job_type, side in sides.items()
    }
    knowledge = sides[KNOWLEDGE]
    requests = sum(run["embedding_requests"] for run in knowledge)
    rounds = sorted({run["round"] for run in runs})
    by_round = {
        str(number): {
            side: next(run for run in runs if run["round"] == number and run["job_type"] == side)
            for side in (PLAIN, KNOWLEDGE)
        }
        for number in rounds
    }
    return {
        "plain_questions_per_s": rate[PLAIN],
        "knowledge_questions_per_s": rate[KNOWLEDGE],
        "ratio": rate[KNOWLEDGE] / rate[PLAIN],
        "questions_per_request": sum(run["embedding_inputs"] for run in knowledge) / max(requests, 1),
        "round_ratios": {
            number: pair[KNOWLEDGE]["questions_per_s"] / pair[PLAIN]["questions_per_s"]
            for number, pair in by_round.items()
        },
        "all_succeeded": all(run["succeeded"] == run["questions"] for run in runs),
        # Else the comparison is of the simulator's pace: its answer time grows with the answer's tokens.
        "same_answer_tokens": len({run["completion_tokens_per_question"] for run in runs}) == 1,
        "plain_embedding_requests": sum(run["embedding_requests"] for run in sides[PLAIN]),
    }


def run_knowledge_batching(
    folder: Path, mix: Mix, *, questions: int = QUESTIONS, rounds: int = ROUNDS, files: int = FILES
) -> dict[str, Any]:
    """``mix``'s simulator pace at concurrency 64, ``questions`` a batch, ``rounds`` of both job types."""
    mix = Mix(**{**mix.__dict__, "name": "knowledge-batching", "jobs": questions, "concurrency": CONCURRENCY})
    folder = folder / "knowledge-batching"
    write_corpus(folder, files, SECTIONS)
    config_path = write_config(folder, config_document(mix))
    with embedded_redis(folder / "redis") as redis_url, simulator_process(*mix.simulator_flags()) as base_url:
        with provider_at(base_url):
            built = asyncio.run(_build(redis_url, config_path))
        with askq_workers(1, redis_url, base_url, config_path, CONCURRENCY) as workers:
            result = asyncio.run(_rounds(redis_url, base_url, config_path, workers[0].pid, mix, rounds))
    return {
        "mix": mix.__dict__,
        "bound_questions_per_s": mix.bound_jobs_per_s,
        "chunks": built,
        **result,
        **summary(result["runs"]),
    }


async def _build(redis_url: str, config_path: Path) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return (await build_base(redis, load_config(config_path), BASE)).chunks
    finally:
        await redis.aclose()
