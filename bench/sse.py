"""``askq serve``'s live events: many SSE clients of running jobs beside a direct pub/sub subscriber.

A private redis-server, the simulator stamping each token with the wall time of its write (as the
relay section does), one ``askq worker`` and one ``askq serve``. The jobs are submitted first and
every client (``bench.sse_clients``, one process) is streaming ``/api/jobs/{id}/events`` before the
worker starts, so every latency kept is of a live event. This process subscribes to the batch's
channel, as the relay section does: the baseline. Halfway through the answers every client hangs up
at once and reconnects with its ``Last-Event-ID`` (the storm); at the end each client's events are
checked against the job's logged events and its stored answer.

Latencies are of the events received before the storm, on both sides (a reconnect's backlog is not
live). CPU comes from /proc for the server, from the clients' own count for their process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process, stop
from bench.mixes import Mix
from bench.procs import askq_server, askq_workers, cpu_s, redis_cpu_s, wait_listening, write_config
from bench.relay import Tap, listen, wait_tokens
from common.config import load_config
from producer.job_log import logged_events
from producer.results import iter_results
from producer.submit import submit_file

BATCH = "ssebench"
MIX = Mix("sse", 50, 50, ttft_ms=500, answer_tokens=160, tokens_per_s=10, ttft_jitter_ms=100)
"""50 jobs streaming at once for about 16 s, 10 tokens a second each."""
CLIENTS_PER_JOB = 10
CLIENTS_TIMEOUT_S = 180.0


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "samples": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "samples": len(values)}


async def _submit(redis: Redis, folder: Path, jobs: int) -> list[str]:
    path = folder / "sse-questions.jsonl"
    lines = [json.dumps({"id": f"q{n}", "question": f"Tell me story {n}"}) for n in range(jobs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    await submit_file(redis, path, load_config(), batch=BATCH)
    return [f"{BATCH}:q{n}" for n in range(jobs)]


@contextmanager
def _client_process(
    folder: Path, url: str, job_ids: list[str], per_job: int
) -> Iterator[subprocess.Popen[str]]:
    jobs_path = folder / "sse-jobs.json"
    jobs_path.write_text(json.dumps(job_ids), encoding="utf-8")
    command = [sys.executable, "-m", "bench.sse_clients", url, str(jobs_path), str(per_job)]
    command.append(str(folder / "sse-clients.json"))
    with (folder / "sse-clients.log").open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        yield process
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


def _said(process: subprocess.Popen[str], folder: Path, word: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != word:
        log = (folder / "sse-clients.log").read_text()[-2000:]
        raise RuntimeError(f"the SSE clients exited {process.wait()} before '{word}': {log}")


async def _cpu(redis: Redis, server: int, worker: int) -> dict[str, float]:
    return {
        "server": cpu_s(server),
        "worker": cpu_s(worker),
        "redis": await redis_cpu_s(redis),
        "at": time.time(),
    }


async def run_sse(folder: Path, mix: Mix = MIX, per_job: int = CLIENTS_PER_JOB) -> dict[str, Any]:
    # Every event of the jobs stays in the log, so each client's events can be checked against it.
    config_path = write_config(folder, {**mix.askq_config(), "stream": {"keep_ended_events": True}})
    tap = Tap()
    with (
        embedded_redis(folder / "redis-sse") as redis_url,
        simulator_process(*mix.simulator_flags(), "--stamp-tokens", "true") as base_url,
        askq_server(redis_url, config_path) as (server_url, server),
    ):
        redis = Redis.from_url(redis_url)
        ready = asyncio.Event()
        listening = asyncio.create_task(listen(redis, tap, ready, BATCH))
        try:
            job_ids = await _submit(redis, folder, mix.jobs)
            await ready.wait()
            with _client_process(folder, server_url, job_ids, per_job) as clients:
                await asyncio.to_thread(_said, clients, folder, "connected")
                with askq_workers(1, redis_url, base_url, config_path, mix.concurrency) as [worker]:
                    await wait_listening(redis, 1)  # its start-up is not the live events' cost
                    start = await _cpu(redis, server.pid, worker.pid)
                    await wait_tokens(tap, mix.jobs * mix.answer_tokens // 2)
                    storm = await _cpu(redis, server.pid, worker.pid)
                    direct_ms = list(tap.all_ms)
                    os.kill(clients.pid, signal.SIGUSR1)
                    code = await asyncio.to_thread(clients.wait, CLIENTS_TIMEOUT_S)
                    end = await _cpu(redis, server.pid, worker.pid)
                if code != 0:
                    raise RuntimeError(
                        f"the SSE clients exited {code}: {(folder / 'sse-clients.log').read_text()[-2000:]}"
                    )
            report = json.loads((folder / "sse-clients.json").read_text(encoding="utf-8"))
            storm_check = await _check(redis, job_ids, report["streams"])
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await redis.aclose()
    return _figures(mix, per_job, report, direct_ms, (start, storm, end), storm_check)


async def _check(redis: Redis, job_ids: list[str], streams: list[dict[str, Any]]) -> dict[str, Any]:
    """Each stream's seqs against its job's logged ones, its deltas against the stored answer."""
    answers = {result.job_id: result.answer async for result in iter_results(redis, BATCH)}
    logged = {job_id: {event.seq for event in await logged_events(redis, job_id)} for job_id in job_ids}
    lost = repeated = whole = 0
    for stream in streams:
        counts = Counter(stream["seqs"])
        missing = len(logged[stream["job_id"]] - counts.keys())
        twice = sum(count - 1 for count in counts.values())
        lost, repeated = lost + missing, repeated + twice
        whole += not missing and not twice and stream["ended"] and stream["text"] == answers[stream["job_id"]]
    return {"lost": lost, "repeated": repeated, "whole_streams": whole, "streams": len(streams)}


def _figures(
    mix: Mix,
    per_job: int,
    report: dict[str, Any],
    direct_ms: list[float],
    cpu: tuple[dict[str, float], dict[str, float], dict[str, float]],
    storm_check: dict[str, Any],
) -> dict[str, Any]:
    start, storm, end = cpu
    live_s = storm["at"] - start["at"]
    sse, direct = _percentiles(report["latencies_ms"]), _percentiles(direct_ms)
    events = sum(stream["events"] for stream in report["streams"])
    live_events = report["live_events"]

    def share(name: str, begin: dict[str, float], until: dict[str, float]) -> float:
        return (until[name] - begin[name]) / (until["at"] - begin["at"])

    return {
        "jobs": mix.jobs,
        "clients": mix.jobs * per_job,
        "tokens_per_s": mix.tokens_per_s,
        "answer_tokens": mix.answer_tokens,
        "sse": sse,
        "direct": direct,
        "added_p50_ms": sse["p50_ms"] - direct["p50_ms"],
        "added_p95_ms": sse["p95_ms"] - direct["p95_ms"],
        "added_p99_ms": sse["p99_ms"] - direct["p99_ms"],
        "live_s": live_s,
        "live_events": live_events,
        "events": events,
        "live_events_per_s": live_events / live_s,
        "server_cpu_us_per_live_event": (storm["server"] - start["server"]) * 1e6 / max(live_events, 1),
        "server_cpu_us_per_event": (end["server"] - start["server"]) * 1e6 / max(events, 1),
        "server_cpu_share_live": share("server", start, storm),
        "worker_cpu_share_live": share("worker", start, storm),
        "redis_cpu_share_live": share("redis", start, storm),
        "clients_cpu_share_live": (report["cpu_s_at_storm"] - report["cpu_s_at_connected"]) / live_s,
        "clients_cpu_us_per_live_event": (report["cpu_s_at_storm"] - report["cpu_s_at_connected"])
        * 1e6
        / max(live_events, 1),
        "storm": {**storm_check, "reconnected_s": _between(report["storm_at"], report["reconnected_at"])},
    }


def _between(start: float | None, end: float | None) -> float:
    """Seconds from ``start`` to ``end``; NaN if the streams ended before the storm came."""
    return end - start if start is not None and end is not None else float("nan")
