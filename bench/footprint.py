"""Redis memory per finished job: what a batch of millions costs, against the question and answer bytes.

A private redis-server and a fast simulator (200-token answers); 2,000 questions run by one
in-process worker in burst mode. The growth of ``used_memory`` over the batch is divided by the
jobs, beside the question and answer bytes per job and the target (1.3 x those + 400 B). ``MEMORY
USAGE`` of every key, summed by family, says where the bytes are; the event log's share is the
part that keeps each answer's text a second time (as its delta events).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from common import keys
from common.config import load_config
from common.logs import configure_logging
from common.stored_jobs import read_jobs
from producer.submit import submit_file
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings

BATCH = "footprint"
ANSWER_TOKENS = 200
TARGET_RATIO = 1.3
TARGET_EXTRA_B = 400
SETTLE_STEP_S = 0.2
SETTLE_MAX_S = 10.0
CLIENTS_SETTLED_B = 100_000
CONFIG = Path(__file__).resolve().parent.parent / "jobs.yaml"


def family(key: str) -> str:
    """Which part of askq's layout a key belongs to, for the breakdown."""
    if key.startswith(keys.job_record("")):
        return "record"
    if key == keys.batch_results(BATCH):
        return "results"
    if key == keys.batch_log(BATCH):
        return "batch log"
    if key.startswith(keys.batch_record(BATCH)):
        return "other batch keys"
    if key == keys.FINISHED:
        return "finished index"
    return "other"


async def _burst_worker(redis_url: str) -> None:
    settings = worker_settings(load_config(CONFIG), url=redis_url, burst=True)
    worker = AskqWorker(**{**settings, "handle_signals": False})
    try:
        await worker.main()
    finally:
        await worker.close()


async def _settled_used_memory(redis: Redis) -> int:
    """``used_memory`` once the closed worker's connections are freed: Redis frees a client and its
    buffers a moment after it goes (up to a megabyte here), which would read as the batch's."""
    previous = int((await redis.info("memory"))["used_memory"])
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_STEP_S)  # nothing to wait on: Redis frees them in its cron
        info = await redis.info("memory")
        used = int(info["used_memory"])
        if int(info["mem_clients_normal"]) < CLIENTS_SETTLED_B and abs(used - previous) < previous * 0.001:
            return used
        previous = used
    return previous


async def _question_answer_bytes(redis: Redis, job_ids: list[str]) -> int:
    total = 0
    for first in range(0, len(job_ids), 500):
        for fields in await read_jobs(redis, job_ids[first : first + 500]):
            total += len(fields.get("question", "").encode()) + len(fields.get("answer", "").encode())
    return total


async def _log_text_bytes(redis: Redis) -> int:
    """Bytes of answer text the batch's event log holds (its delta events)."""
    total = 0
    for _, fields in await redis.xrange(keys.batch_log(BATCH)):
        for event in json.loads(fields[keys.LOG_FIELD.encode()]):
            total += len(str(event.get("text", "")).encode())
    return total


async def run_footprint(folder: Path, jobs: int = 2000) -> dict[str, Any]:
    questions = folder / "footprint.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": f"q{n}", "question": f"What is the meaning of question number {n}, briefly?"})
            + "\n"
            for n in range(jobs)
        ),
        encoding="utf-8",
    )
    configure_logging(quiet=True)  # 2,000 "job finished" lines would bury the table
    flags = ("--ttft-ms", "5", "--tokens-per-s", "20000", "--answer-tokens", str(ANSWER_TOKENS))
    with embedded_redis(folder / "footprint-redis") as url, simulator_process(*flags) as base_url:
        os.environ["OPENAI_BASE_URL"] = base_url
        redis = Redis.from_url(url)
        try:
            before = int((await redis.info("memory"))["used_memory"])
            await submit_file(redis, questions, load_config(CONFIG), batch=BATCH)
            await _burst_worker(url)
            used = await _settled_used_memory(redis) - before
            job_ids = [job_id.decode() for job_id in await redis.lrange(keys.batch_items(BATCH), 0, -1)]
            finished = await redis.zcard(keys.FINISHED)
            by_family: Counter[str] = Counter()
            async for key in redis.scan_iter(count=1000):
                by_family[family(key.decode())] += await redis.memory_usage(key, samples=0) or 0
            sample = keys.job_record(job_ids[0])
            encoding = (await redis.object("encoding", sample)).decode()
            qa_per_job = await _question_answer_bytes(redis, job_ids) / jobs
            log_text_per_job = await _log_text_bytes(redis) / jobs
        finally:
            await redis.aclose()
    per_job = used / jobs
    target = TARGET_RATIO * qa_per_job + TARGET_EXTRA_B
    return {
        "jobs": jobs,
        "finished": finished,
        "bytes_per_job": per_job,
        "question_answer_bytes_per_job": qa_per_job,
        "target_bytes_per_job": target,
        "met": per_job <= target,
        "record_encoding": encoding,
        "by_family_bytes_per_job": {name: size / jobs for name, size in by_family.most_common()},
        "batch_log_text_bytes_per_job": log_text_per_job,
        "bytes_per_job_without_batch_log": per_job - by_family["batch log"] / jobs,
    }
