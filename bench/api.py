"""``askq serve`` from outside: a large batch's status, a results download and a file's upload.

One private redis-server and one real ``askq serve`` process (default ``jobs.yaml``), loopback
only; this process is the client (httpx2, one kept-alive connection). Batches are built here with
``producer.submit.submit_file`` (what ``askq submit`` runs) and, for finished jobs, the worker's own
``JobStore.finish`` (the Lua call that records a job's end) with a fixed answer: no provider, the same
keys and fields a worker leaves. What is timed is the server's side only.

- upload: ``POST /api/batches`` of a question file as multipart, beside ``askq submit`` of the same
  file (a fresh batch each), questions a second over the whole request / command;
- results: ``GET /api/batches/{batch}/results`` of a finished batch, streamed: lines a second, the
  server's and Redis's CPU a line (the rate depends on what else the machine runs; the CPU much
  less), and the server's ``VmRSS`` before and after and its ``VmHWM`` (reset before the download);
- status: ``GET /api/batches/{batch}`` of a large batch as submitted (queued), then once every job
  has a latency (finished): p50 / p95.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
from redis.asyncio import Redis

from askq.serve import READY
from askq.stack import embedded_redis, stop
from bench.procs import cpu_s, redis_cpu_s
from bench.submit import submit_command, write_questions
from common import keys, record
from common.config import AskqConfig, load_config
from common.status import JobState
from common.usage import Usage
from producer.batches import job_id_pages
from producer.submit import submit_file
from worker.answering.run_outcomes import Outcome
from worker.answering.store import JobStore

STATUS_ITEMS = 1_000_000
RESULT_ITEMS = 200_000
UPLOAD_LINES = 100_000
STATUS_CALLS = 200
WARM_UP_CALLS = 5
ANSWER = ("The answer, in about two hundred tokens of ordinary prose, goes on like this. " * 17).strip()
"""1,343 characters: about a 200-token answer (the footprint section's size)."""
FINISH_AT_ONCE = 500
"""Jobs recorded finished concurrently: one page of job ids."""


@contextmanager
def serve_process(redis_url: str) -> Iterator[tuple[str, int]]:
    """``askq serve --port 0`` with the default config; yields its URL and pid once it listens."""
    env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": os.devnull}
    env.pop("ASKQ_API_TOKEN", None)
    drain: threading.Thread | None = None
    process = subprocess.Popen(
        [sys.executable, "-m", "askq.cli", "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:
            if line.startswith(READY):
                url = line.removeprefix(READY).split()[0]
                break
            said.append(line)
        else:
            raise RuntimeError(f"askq serve exited {process.wait()}: {''.join(said)}")
        # Whatever it says later is drained, so a full pipe never stalls it.
        drain = threading.Thread(target=process.stderr.read, daemon=True)
        drain.start()
        yield url, process.pid
    finally:
        stop(process)
        if process.stderr is not None:
            if drain is not None:
                drain.join()  # the pipe's end came with the process's
            process.stderr.close()


def memory_kb(pid: int) -> dict[str, int]:
    """The process's resident set now (``VmRSS``) and at its peak (``VmHWM``), in kB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {name: value for name, _, value in (line.partition(":") for line in lines)}
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    """``VmHWM`` back to the current ``VmRSS`` (``clear_refs`` 5), so the next peak is the download's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def percentiles_ms(times_s: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.array(times_s) * 1000, [50, 95]).tolist()
    return {"p50_ms": p50, "p95_ms": p95, "calls": len(times_s)}


def upload(client: httpx2.Client, url: str, path: Path, redis_url: str) -> dict[str, Any]:
    """The file through ``POST /api/batches``, then through ``askq submit``: questions a second each."""
    with path.open("rb") as lines_of:
        lines = sum(1 for _ in lines_of)
    started = time.perf_counter()
    with path.open("rb") as body:
        response = client.post(
            f"{url}/api/batches", files={"file": (path.name, body)}, data={"batch": "upload-api"}
        )
    api_s = time.perf_counter() - started
    if response.status_code != 201 or response.json()["enqueued"] != lines:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text[:300]}")
    cli = submit_command(path, redis_url, batch="upload-cli")
    return {
        "lines": lines,
        "api_s": api_s,
        "api_questions_per_s": lines / api_s,
        "cli_s": cli["elapsed_s"],
        "cli_questions_per_s": lines / cli["elapsed_s"],
        "ratio": cli["elapsed_s"] / api_s,
    }


async def finish_all(redis: Redis, config: AskqConfig, batch: str) -> float:
    """Every job of the batch recorded succeeded by the worker's store call, a page at a time; seconds."""
    store = JobStore(redis, config.retention.ttl_s, config.stream)
    usage = Usage(prompt_tokens=30, completion_tokens=200, total_tokens=230)
    started = time.perf_counter()
    async for page in job_id_pages(redis, batch):
        outcomes = [
            Outcome(
                JobState.SUCCEEDED,
                1,
                ANSWER,
                usage=usage,
                finish_reason="stop",
                model="bench",
                latency_ms=900 + index % 200,
            )
            for index in range(len(page))
        ]
        await asyncio.gather(
            *(store.finish(job, batch, out) for job, out in zip(page, outcomes, strict=True))
        )
    return time.perf_counter() - started


async def build_batch(redis_url: str, path: Path, batch: str, *, finished: bool) -> dict[str, Any]:
    """The file submitted as ``batch`` (and, if ``finished``, every job recorded ended); the times."""
    config = load_config(Path(os.devnull))
    redis = Redis.from_url(redis_url)
    try:
        started = time.perf_counter()
        report = await submit_file(redis, path, config, batch=batch)
        built = {"items": report.enqueued, "submit_s": time.perf_counter() - started}
        if finished:
            built["finish_s"] = await finish_all(redis, config, batch)
        return built
    finally:
        await redis.aclose()


def download(client: httpx2.Client, url: str, pid: int, redis_url: str, batch: str) -> dict[str, Any]:
    """The batch's results streamed and counted; the server's memory around it, its CPU and Redis's."""
    reset_peak(pid)
    before = memory_kb(pid)
    cpu_before = cpu_s(pid), redis_cpu_now(redis_url)
    lines = size = 0
    started = time.perf_counter()
    with client.stream("GET", f"{url}/api/batches/{batch}/results") as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
            size += len(chunk)
    elapsed_s = time.perf_counter() - started
    after = memory_kb(pid)
    server_cpu_s, redis_cpu_s = cpu_s(pid) - cpu_before[0], redis_cpu_now(redis_url) - cpu_before[1]
    return {
        "lines": lines,
        "mb": size / 1e6,
        "elapsed_s": elapsed_s,
        "lines_per_s": lines / elapsed_s,
        "rss_before_mb": before["VmRSS"] / 1024,
        "rss_after_mb": after["VmRSS"] / 1024,
        "peak_growth_mb": (after["VmHWM"] - before["VmRSS"]) / 1024,
        "server_cpu_us_per_line": server_cpu_s * 1e6 / max(lines, 1),
        "redis_cpu_us_per_line": redis_cpu_s * 1e6 / max(lines, 1),
    }


def redis_cpu_now(redis_url: str) -> float:
    """Redis's user + system CPU seconds so far."""

    async def read() -> float:
        redis = Redis.from_url(redis_url)
        try:
            return await redis_cpu_s(redis)
        finally:
            await redis.aclose()

    return asyncio.run(read())


def status_times(client: httpx2.Client, url: str, batch: str, calls: int) -> dict[str, Any]:
    """``calls`` status requests one after another on the kept-alive connection, after a warm-up whose
    first call is timed apart: it reads what the server has not read before (``producer.latencies``)."""
    started = time.perf_counter()
    client.get(f"{url}/api/batches/{batch}").raise_for_status()
    first_ms = (time.perf_counter() - started) * 1000
    for _ in range(WARM_UP_CALLS - 1):
        client.get(f"{url}/api/batches/{batch}").raise_for_status()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.get(f"{url}/api/batches/{batch}")
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    document = response.json()
    return {
        **percentiles_ms(times),
        "first_ms": first_ms,
        "job_ids_total": document["job_ids_total"],
        "done": document["done"],
    }


def finish_latencies(redis_url: str, batch: str) -> float:
    """Every queued job of a large batch marked finished where the status reads it: its counters and a
    latency each (the store call's writes to the batch's keys; the jobs themselves stay as they are)."""

    async def write() -> float:
        redis = Redis.from_url(redis_url)
        try:
            started = time.perf_counter()
            total = int(await redis.hget(keys.batch_record(batch), record.TOTAL))
            for start in range(0, total, 10_000):
                values = [f"{900 + index % 200:.1f}" for index in range(start, min(start + 10_000, total))]
                await redis.rpush(keys.batch_latencies(batch), *values)
            await redis.hset(
                keys.batch_record(batch), mapping={JobState.QUEUED.value: 0, JobState.SUCCEEDED.value: total}
            )
            return time.perf_counter() - started
        finally:
            await redis.aclose()

    return asyncio.run(write())


def run_api(
    folder: Path,
    *,
    status_items: int = STATUS_ITEMS,
    result_items: int = RESULT_ITEMS,
    upload_lines: int = UPLOAD_LINES,
    status_calls: int = STATUS_CALLS,
) -> dict[str, Any]:
    folder = folder / "api"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with (
        embedded_redis(folder / "redis") as redis_url,
        serve_process(redis_url) as (url, pid),
        httpx2.Client(timeout=600) as client,
    ):
        path = folder / "upload.txt"
        write_questions(path, upload_lines)
        results["upload"] = upload(client, url, path, redis_url)

        path = folder / "results.txt"
        write_questions(path, result_items)
        built = asyncio.run(build_batch(redis_url, path, "results", finished=True))
        results["results"] = {**built, **download(client, url, pid, redis_url, "results")}

        path = folder / "status.txt"
        write_questions(path, status_items)
        built = asyncio.run(build_batch(redis_url, path, "status", finished=False))
        queued = status_times(client, url, "status", status_calls)
        latencies_s = finish_latencies(redis_url, "status")
        finished = status_times(client, url, "status", status_calls)
        results["status"] = {**built, "queued": queued, "finished": finished, "latencies_s": latencies_s}
    return results
