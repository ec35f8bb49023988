"""Submit: questions enqueued per second by ``askq submit``, and its peak memory, by file size."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from askq.stack import embedded_redis


def write_questions(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, lines, 10_000):
            out.write(
                "".join(
                    f"Question number {index}: what is {index} squared?\n"
                    for index in range(start, min(start + 10_000, lines))
                )
            )


def submit_command(path: Path, redis_url: str, *, batch: str | None = None) -> dict[str, Any]:
    """``askq submit`` of the file as a child process: its wall time and its own peak memory."""
    env = {**os.environ, "REDIS_URL": redis_url, "ASKQ_CONFIG": os.devnull}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "askq.cli", "submit", str(path), "--batch", batch or path.stem],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    with process.stderr:
        # wait4 gives this child's own peak resident memory, not the largest of all children so far.
        _, status, usage = os.wait4(process.pid, 0)
        elapsed_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it
        if status != 0:
            raise RuntimeError(f"askq submit failed: {process.stderr.read().decode()}")
    return {"elapsed_s": elapsed_s, "peak_mb": usage.ru_maxrss / 1024}


def run_submit(folder: Path, sizes: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for lines in sizes:
        path = folder / f"questions-{lines}.txt"
        write_questions(path, lines)
        with embedded_redis(folder / f"redis-submit-{lines}") as redis_url:
            run = submit_command(path, redis_url)
        path.unlink()
        results[str(lines)] = {"lines": lines, "questions_per_s": lines / run["elapsed_s"], **run}
    return results
