"""Knowledge search and a worker's index memory: 100,000 chunks of 512 dimensions.

Search: a seeded random matrix of unit rows, ``KnowledgeIndex.search`` with ``k`` 4, one question a
call (200 calls) and 32 questions a call (40 calls), p50 and p95. Each runs in a child process, once
pinned to one CPU with BLAS held to one thread (the variables are set before numpy loads), which is
the figure the targets are for, and once with BLAS's default threads. Beside them, the core's own
rate on a square float32 product, and the time the 32-question product would take at that rate.

Memory: the same matrix written to a private Redis as a build writes it, then loaded by
``load_index`` in a fresh child process: its resident memory before and after, and at the peak,
over the matrix's bytes; and how long the load took.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from redis.asyncio import Redis

from askq.stack import embedded_redis
from common.knowledge import KnowledgeMeta, StoredChunk
from worker.knowledge.index import KnowledgeIndex, Matrix, normalised
from worker.knowledge.index_store import load_index, write_version

ROWS = 100_000
DIMENSIONS = 512
TOP_K = 4
BATCH = 32
SINGLE_CALLS = 200
BATCH_CALLS = 40
WARM_UP_CALLS = 3
BASE = "bench"
MATRIX_SEED = 7
QUERY_SEED = 8
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PEAK_SIDE = 1024
"""The square product that gives the core's float32 rate (2 GFLOP: tens of ms)."""
CHILD_TIMEOUT_S = 300
TARGET_SINGLE_P50_MS = 10.0
TARGET_BATCH_P50_MS = 40.0
TARGET_MEMORY_RATIO = 1.2


def random_unit(rows: int, dimensions: int, seed: int) -> Matrix:
    rng = np.random.default_rng(seed)
    return normalised(rng.standard_normal((rows, dimensions), dtype=np.float32))


def checksum(matrix: Matrix) -> float:
    """A sum over every 97th row: the same matrix written and loaded gives the same figure."""
    return float(matrix[::97].sum(dtype=np.float64))


def _timed(index: KnowledgeIndex, batches: list[Matrix]) -> dict[str, float]:
    """p50 and p95 of a search of each batch; and the CPU the process had over the calls' wall time,
    which says whether the machine left it its cores (1 a core)."""
    for batch in batches[:WARM_UP_CALLS]:
        index.search(batch, TOP_K)  # first calls fault the scores' pages in
    times = []
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for batch in batches:
        started = time.perf_counter()
        index.search(batch, TOP_K)
        times.append((time.perf_counter() - started) * 1000)
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "cpu_per_wall": cpu / wall,
    }


def _peak_gflops() -> float:
    """The core's float32 rate on a square product (BLAS at its best), the best of 5."""
    square = np.random.default_rng(0).standard_normal((PEAK_SIDE, PEAK_SIDE), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        square @ square
        best = min(best, time.perf_counter() - started)
    return 2 * PEAK_SIDE**3 / best / 1e9


def measure_search(rows: int, dimensions: int, single_calls: int, batch_calls: int) -> dict[str, Any]:
    """In this process, as its BLAS and CPUs are set: the search's times and the core's rate."""
    meta = KnowledgeMeta(
        name=BASE, version=1, model="bench", dimensions=dimensions, chunks=rows, files=1,
        matrix_bytes=rows * dimensions * 4, built_at=0, chunk_tokens=300, chunk_overlap_tokens=40,
        rows_per_segment=0, segments=0,
    )  # fmt: skip
    index = KnowledgeIndex(meta, random_unit(rows, dimensions, MATRIX_SEED))
    questions = random_unit(max(single_calls, batch_calls * BATCH), dimensions, QUERY_SEED)
    single = _timed(index, [questions[i : i + 1] for i in range(single_calls)])
    batched = _timed(index, [questions[i * BATCH : (i + 1) * BATCH] for i in range(batch_calls)])
    gflops = _peak_gflops()
    floor_ms = 2 * BATCH * rows * dimensions / gflops / 1e6
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "load_average": os.getloadavg()[0],
        "single": single,
        "batch": batched,
        "peak_gflops": gflops,
        "batch_product_floor_ms": floor_ms,
    }


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Start VmHWM afresh (Linux 4.0+), so the peak is the load's, not numpy's import's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def measure_load(url: str) -> dict[str, Any]:
    """In this fresh process: resident memory around ``load_index`` of the bench base, and its time."""
    redis = Redis.from_url(url)
    try:
        await redis.ping()  # the connection and its buffers exist before the first reading
        before = _status_kb("VmRSS")
        peak_reset = _reset_peak()
        started = time.perf_counter()
        index = await load_index(redis, BASE)
        took = time.perf_counter() - started
        after = _status_kb("VmRSS")
        peak = _status_kb("VmHWM")
    finally:
        await redis.aclose()
    matrix_bytes = index.matrix.nbytes
    return {
        "matrix_bytes": matrix_bytes,
        "rss_growth_bytes": after - before,
        "ratio": (after - before) / matrix_bytes,
        "peak_ratio": (peak - before) / matrix_bytes if peak_reset else None,
        "load_s": took,
        "checksum": checksum(index.matrix),
    }


async def _write_base(url: str, matrix: Matrix) -> None:
    """The matrix stored as ``askq knowledge build`` stores it (chunk texts a few bytes each)."""
    draft = KnowledgeMeta(
        name=BASE, version=0, model="bench", dimensions=matrix.shape[1], chunks=0, files=0,
        matrix_bytes=0, built_at=0, chunk_tokens=300, chunk_overlap_tokens=40, rows_per_segment=0,
        segments=0,
    )  # fmt: skip
    chunks = [StoredChunk(text=f"chunk {row}", file="bench.md", position=row) for row in range(len(matrix))]
    redis = Redis.from_url(url)
    try:
        await write_version(redis, draft, matrix, chunks, {})
    finally:
        await redis.aclose()


def _child(mode: str, arguments: dict[str, Any], one_core: bool) -> dict[str, Any]:
    """``mode`` run in a new interpreter, its BLAS set before numpy loads; its JSON reply."""
    env = {**os.environ, **(ONE_THREAD if one_core else {})}
    payload = json.dumps({**arguments, "one_core": one_core})
    done = subprocess.run(
        [sys.executable, "-m", "bench.knowledge_search", mode, payload],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.knowledge_search {mode} failed: {done.stderr.strip()[-2000:]}")
    reply: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return reply


def run_knowledge(
    folder: Path,
    rows: int = ROWS,
    dimensions: int = DIMENSIONS,
    single_calls: int = SINGLE_CALLS,
    batch_calls: int = BATCH_CALLS,
) -> dict[str, Any]:
    shape = {"rows": rows, "dimensions": dimensions}
    calls = {**shape, "single_calls": single_calls, "batch_calls": batch_calls}
    one_core = _child("search", calls, one_core=True)
    default = _child("search", calls, one_core=False)
    matrix = random_unit(rows, dimensions, MATRIX_SEED)
    written = checksum(matrix)
    with embedded_redis(folder / "knowledge-redis") as url:
        asyncio.run(_write_base(url, matrix))
        del matrix
        memory = _child("load", {"url": url}, one_core=False)
    memory["loaded_intact"] = memory.pop("checksum") == written
    return {
        **shape,
        "top_k": TOP_K,
        "batch": BATCH,
        "one_core": one_core,
        "default": default,
        "memory": memory,
    }


def _main(mode: str, arguments: dict[str, Any]) -> dict[str, Any]:
    if arguments.pop("one_core"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if mode == "search":
        return measure_search(**arguments)
    return asyncio.run(measure_load(**arguments))


if __name__ == "__main__":
    print(json.dumps(_main(sys.argv[1], json.loads(sys.argv[2]))))
