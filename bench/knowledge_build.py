"""Building a knowledge base: chunks embedded a second against the simulator (its defaults: answers
at once), and what a rebuild after one file's edit sends.

2,000 chunks: 40 generated Markdown files of 50 sections (``bench.knowledge_corpus``), built by
``build_base`` (what ``askq knowledge build`` runs) in this process against a simulator process and
a private Redis. Then one file is rewritten and the base rebuilt: the simulator's count of embedded
inputs must grow by that file's chunks in the new version, and by nothing else.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from askq.stack import embedded_redis, simulator_process
from bench.knowledge_corpus import BASE, file_path, file_text, knowledge_config, write_corpus
from bench.procs import write_config
from bench.throughput import sim_stats
from common.config import load_config
from common.knowledge_store import read_file_table, read_meta
from worker.knowledge.build import build_base
from worker.knowledge.build_report import BuildReport

FILES = 40
SECTIONS = 50
EDITED = 7
"""The file the rebuild finds changed."""


class EmbedClock:
    """The build's progress: when embedding began and when its last chunk came back."""

    def __init__(self) -> None:
        self.started = self.ended = 0.0

    def planned(self, chunks: int) -> None:
        self.started = time.perf_counter()

    def embedded(self, chunks: int) -> None:
        self.ended = time.perf_counter()


@contextmanager
def provider_at(base_url: str) -> Iterator[None]:
    """This process's provider is the simulator while the block runs (the build reads the environment)."""
    saved = {name: os.environ.get(name) for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    os.environ.update({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "bench"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _build(redis: Redis, config_path: Path, base_url: str) -> tuple[BuildReport, EmbedClock, int]:
    """One build; its report, its embedding's clock and the inputs the simulator embedded meanwhile."""
    clock = EmbedClock()
    before = sim_stats(base_url)["embedding_inputs"]
    report = await build_base(redis, load_config(config_path), BASE, clock)
    return report, clock, sim_stats(base_url)["embedding_inputs"] - before


def _rates(report: BuildReport, clock: EmbedClock, sent: int) -> dict[str, Any]:
    embedding_s = clock.ended - clock.started
    return {
        "chunks": report.chunks,
        "chunks_embedded": report.chunks_embedded,
        "simulator_inputs": sent,
        "requests": report.requests,
        "build_s": report.seconds,
        "embedding_s": embedding_s,
        "chunks_per_s": report.chunks_embedded / report.seconds,
        "embedding_chunks_per_s": report.chunks_embedded / embedding_s if embedding_s else float("nan"),
    }


async def _measure(
    redis: Redis, folder: Path, config_path: Path, base_url: str, sections: int, edited: int
) -> dict[str, Any]:
    first = _rates(*await _build(redis, config_path, base_url))
    (folder / file_path(edited)).write_text(file_text(edited, sections, edition=1), encoding="utf-8")
    report, clock, sent = await _build(redis, config_path, base_url)
    meta = await read_meta(redis, BASE)
    assert meta is not None  # the rebuild just made it current
    file_chunks = (await read_file_table(redis, meta))[file_path(edited)].rows
    rebuild = {**_rates(report, clock, sent), "edited_file_chunks": file_chunks}
    rebuild["only_that_file"] = sent == file_chunks and report.files_embedded == [file_path(edited)]
    return {"files": len(list((folder / "kb").glob("*.md"))), "build": first, "rebuild": rebuild}


def run_knowledge_build(
    folder: Path, files: int = FILES, sections: int = SECTIONS, edited: int = EDITED
) -> dict[str, Any]:
    folder = folder / "knowledge-build"
    write_corpus(folder, files, sections)
    config_path = write_config(folder, knowledge_config())
    with (
        embedded_redis(folder / "redis") as redis_url,
        simulator_process() as base_url,
        provider_at(base_url),
    ):

        async def measure() -> dict[str, Any]:
            redis = Redis.from_url(redis_url)
            try:
                return await _measure(redis, folder, config_path, base_url, sections, edited)
            finally:
                await redis.aclose()

        return asyncio.run(measure())
