"""A worker process that runs no-op jobs: askq's worker as configured by default, or arq's defaults.

    python -m bench.noop askq|arq REDIS_URL JOBS

It runs until it has run JOBS jobs, then prints one JSON line: seconds from its first job's start
to its last job's end, marked RESULT, and each job's pick-up latency (enqueue to start; the enqueuer puts its
clock reading in the job's argument).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from arq.worker import Worker, func

from askq.run_worker import event_loop_factory
from common import keys
from common.config import load_config
from common.serializer import job_deserializer, job_serializer
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings

NOOP = "noop"
RESULT = "RESULT "


class Recorder:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.pickups_ms: list[float] = []
        self.first_start = self.last_end = 0.0
        self.all_done = asyncio.Event()

    async def noop(self, ctx: dict[str, Any], enqueued_at: float) -> None:
        now = time.time()
        self.first_start = self.first_start or now
        self.pickups_ms.append((now - enqueued_at) * 1000)
        self.last_end = time.time()
        if len(self.pickups_ms) >= self.expected:
            self.all_done.set()


def make_worker(mode: str, redis_url: str, recorder: Recorder) -> Worker:
    function = func(recorder.noop, name=NOOP)
    if mode == "arq":
        settings = {"redis_settings": worker_settings(load_config(), url=redis_url)["redis_settings"]}
        return Worker(
            functions=[function],
            queue_name=keys.QUEUE,
            job_serializer=job_serializer,
            job_deserializer=job_deserializer,
            handle_signals=False,
            **settings,
        )
    settings = worker_settings(load_config(), url=redis_url)
    return AskqWorker(**{**settings, "functions": [function], "handle_signals": False})


async def main(mode: str, redis_url: str, expected: int) -> None:
    recorder = Recorder(expected)
    worker = make_worker(mode, redis_url, recorder)
    running = asyncio.create_task(worker.main())
    await recorder.all_done.wait()
    span_s = recorder.last_end - recorder.first_start
    print(
        RESULT
        + json.dumps({"jobs": len(recorder.pickups_ms), "span_s": span_s, "pickups_ms": recorder.pickups_ms})
    )
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()


if __name__ == "__main__":
    # askq's worker runs on the loop `askq worker` uses; arq's on asyncio's, as stock arq does.
    loop_factory = event_loop_factory() if sys.argv[1] == "askq" else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
