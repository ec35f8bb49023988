"""A batch's output and error files, made from its results in input order, in the Batch API's line
format: the lines ``askq results --format openai-batch`` writes, the succeeded ones in the output file
and the others in the error file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from common.status import JobState
from common.untrusted import json_line
from producer.results import Result, iter_results, openai_batch_line

OUTPUT = "output"
ERROR = "error"
OUTPUT_KINDS = (OUTPUT, ERROR)


@dataclass(frozen=True)
class OutputSize:
    lines: int = 0
    size: int = 0


def kind_of(result: Result) -> str:
    return OUTPUT if result.status == JobState.SUCCEEDED.value else ERROR


def encoded(result: Result) -> bytes:
    """The result's line as ``askq results --format openai-batch`` writes it (``write_results``)."""
    return (json_line(json.dumps(openai_batch_line(result), ensure_ascii=False)) + "\n").encode()


async def output_lines(redis: Redis, batch: str, kind: str) -> AsyncIterator[bytes]:
    async for result in iter_results(redis, batch):
        if kind_of(result) == kind:
            yield encoded(result)


async def output_sizes(redis: Redis, batch: str) -> dict[str, OutputSize]:
    """How many lines and bytes each file has: one pass over the results, when the batch ends."""
    lines = dict.fromkeys(OUTPUT_KINDS, 0)
    sizes = dict.fromkeys(OUTPUT_KINDS, 0)
    async for result in iter_results(redis, batch):
        kind = kind_of(result)
        lines[kind] += 1
        sizes[kind] += len(encoded(result))
    return {kind: OutputSize(lines[kind], sizes[kind]) for kind in OUTPUT_KINDS}
