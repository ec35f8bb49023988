"""Everything breaking at once, and what is lost: a batch under provider faults, kills and a Redis restart.

    .venv/bin/python -m bench.chaos [--jobs 300] [--out bench/results/chaos.json]

It starts a private redis-server with AOF, the simulator with random faults (429 with Retry-After,
500, 503, streams cut mid-way, errors inside 200 streams) and two ``askq worker`` processes with
the default ``jobs.yaml`` limits, submits the questions, then, while the batch runs:

1. ``kill -9`` worker A (jobs mid-stream) and start a replacement;
2. ``SIGTERM`` worker B (it finishes what it holds within the grace) and start a replacement;
3. stops Redis and starts it again from its AOF file.

At the end it counts, from the results and the batch's event log: results lost (items without exactly
one final result), duplicates (items recorded or ended twice), provider attempts against the
policy, and the recovery time of the jobs worker A held (kill to their re-run's first event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from askq.stack import embedded_redis, free_port, simulator_process, stop
from common import keys
from common.config import load_config
from common.events import EventType, StreamEvent
from common.replay import entry_events
from common.status import JobState
from producer.batches import batch_status
from producer.results import iter_results
from producer.submit import submit_file

BATCH = "chaos"
FAULTS = ("--rate-429", "0.03", "--rate-500", "0.03", "--rate-503", "0.02", "--rate-cut", "0.03")
SIM_FLAGS = (
    *FAULTS,
    *("--rate-error-in-stream", "0.02", "--retry-after-s", "0.3", "--seed", "7"),
    *("--ttft-ms", "100", "--tokens-per-s", "40", "--answer-tokens", "120"),
)
AOF = ("--appendonly", "yes", "--appendfsync", "everysec")


class Workers:
    def __init__(self, redis_url: str, base_url: str, logs: Path) -> None:
        self._env = {**os.environ, "REDIS_URL": redis_url, "OPENAI_BASE_URL": base_url}
        self._logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = (self._logs / f"{name}.log").open("wb")
        command = [sys.executable, "-m", "askq.cli", "worker"]
        self.running[name] = subprocess.Popen(command, env=self._env, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, name: str, signum: int) -> subprocess.Popen[bytes]:
        process = self.running.pop(name)
        process.send_signal(signum)
        return process

    def stop_all(self) -> None:
        for process in self.running.values():
            stop(process)


async def wait_for(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout_s:.0f} s")
        await asyncio.sleep(0.05)  # a deadline-bound poll of the batch's progress


async def running_jobs(redis: Redis) -> list[str]:
    status = await batch_status(redis, BATCH)
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in status.job_ids:
            pipe.hget(keys.job_record(job_id), "state")
        states = await pipe.execute()
    return [job_id for job_id, state in zip(status.job_ids, states, strict=True) if state == b"running"]


async def finished(redis: Redis) -> int:
    try:
        return (await batch_status(redis, BATCH, with_job_ids=False, with_latencies=False)).finished
    except (RedisError, OSError):  # Redis is down during its restart
        return -1


async def run(jobs: int, out: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="askq-chaos-"))
    port = free_port()
    redis_server = embedded_redis(work / "redis", extra_args=AOF, port=port)
    url = redis_server.__enter__()
    with simulator_process(*SIM_FLAGS) as base_url:
        redis = Redis.from_url(url)
        questions = work / "questions.jsonl"
        questions.write_text(
            "".join(json.dumps({"id": f"q{n}", "question": f"Question {n}"}) + "\n" for n in range(jobs))
        )
        config = load_config()
        await submit_file(redis, questions, config, batch=BATCH)
        workers = Workers(url, base_url, work)
        workers.start("a")
        workers.start("b")
        started = time.monotonic()
        try:
            await wait_for(lambda: _at_least(redis, jobs // 10), 120)
            held = await running_jobs(redis)
            killed = workers.signal("a", signal.SIGKILL)
            killed_at = time.time()
            killed.wait()
            workers.start("a2")
            await wait_for(lambda: _at_least(redis, jobs // 3), 300)
            workers.signal("b", signal.SIGTERM)
            workers.start("b2")
            await wait_for(lambda: _at_least(redis, jobs // 2), 300)
            redis_server.__exit__(None, None, None)
            redis_server = embedded_redis(work / "redis", extra_args=AOF, port=port)
            redis_server.__enter__()
            await redis.aclose()
            redis = Redis.from_url(url)
            await wait_for(lambda: _at_least(redis, jobs), 600)
            elapsed_s = time.monotonic() - started
        finally:
            workers.stop_all()
        report = await _report(redis, jobs, held, killed_at, elapsed_s, _sim_stats(base_url))
        await redis.aclose()
    redis_server.__exit__(None, None, None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


async def _at_least(redis: Redis, count: int) -> bool:
    return await finished(redis) >= count


def _sim_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_sim/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


async def _report(
    redis: Redis, jobs: int, held: list[str], killed_at: float, elapsed_s: float, sim: dict[str, Any]
) -> dict[str, Any]:
    rows = [row async for row in iter_results(redis, BATCH)]
    per_item = Counter(row.item_id for row in rows)
    ended_twice = 0
    recovery_s: list[float] = []
    by_job: dict[str, list[StreamEvent]] = defaultdict(list)
    for _, fields in await redis.xrange(keys.batch_log(BATCH)):
        for event in entry_events(fields):
            by_job[event.job_id].append(event)
    for row in rows:
        events = by_job[row.job_id]
        # A resent entry repeats a done under the same seq: only a second seq is a second end.
        ended_twice += len({event.seq for event in events if event.type is EventType.DONE}) > 1
        if row.job_id in held:
            restarts = [
                e.ts for e in events if e.type is EventType.RETRY and "stopped mid-way" in (e.error or "")
            ]
            recovery_s += [min(restarts) - killed_at] if restarts else []
    status = await batch_status(redis, BATCH)
    by_status = sim["responses_by_status"]
    return {
        "jobs": jobs,
        "elapsed_s": round(elapsed_s, 1),
        "succeeded": status.counts[JobState.SUCCEEDED],
        "failed": status.counts[JobState.FAILED],
        "failure_reasons": dict(Counter(row.error or "" for row in rows if row.status != "succeeded")),
        "results_lost": jobs - sum(1 for count in per_item.values() if count == 1),
        "duplicates": sum(count - 1 for count in per_item.values()) + ended_twice,
        "faults_injected": {
            "429": by_status.get("429", 0),
            "500": by_status.get("500", 0),
            "503": by_status.get("503", 0),
            "cut_streams": sim["streams_cut"],
            "errors_in_stream": sim["streams_errored"],
            "worker_kill_9": 1,
            "worker_sigterm": 1,
            "redis_restart": 1,
        },
        "provider_requests": sim["requests_total"],
        "jobs_held_by_killed_worker": len(recovery_s),
        "recovery_after_kill_s": [round(value, 1) for value in sorted(recovery_s)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args()
    os.environ.pop("ASKQ_CONFIG", None)
    report = asyncio.run(run(args.jobs, args.out))
    width = max(len(name) for name in report)
    for name, value in report.items():
        print(f"{name:<{width}}  {value}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
