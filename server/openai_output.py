"""A batch's output and error files, made from its results in input order, in the Batch API's line
format: the lines ``askq results --format openai-batch`` writes, the succeeded ones in the output file
and the others in the error file. Written once, when the batch ends (``server.openai_finalize``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from common.status import JobState
from common.untrusted import json_line
from producer.results import Result, iter_results, openai_batch_line

OUTPUT = "output"
ERROR = "error"
OUTPUT_KINDS = (OUTPUT, ERROR)
PART_BYTES = 1 << 20
"""The largest value one part of a file's content takes in Redis."""


@dataclass(frozen=True)
class OutputSize:
    lines: int = 0
    size: int = 0


def kind_of(result: Result) -> str:
    return OUTPUT if result.status == JobState.SUCCEEDED.value else ERROR


def encoded(result: Result) -> bytes:
    """The result's line as ``askq results --format openai-batch`` writes it (``write_results``)."""
    return (json_line(json.dumps(openai_batch_line(result), ensure_ascii=False)) + "\n").encode()


async def write_outputs(redis: Redis, batch: str, parts: dict[str, str], ttl_s: int) -> dict[str, OutputSize]:
    """Append each file's content to its list in ``parts`` (by kind), at most ``PART_BYTES`` an item:
    one pass over the results. How many lines and bytes each file has."""
    lines = dict.fromkeys(OUTPUT_KINDS, 0)
    pending = {kind: bytearray() for kind in OUTPUT_KINDS}
    written = dict.fromkeys(OUTPUT_KINDS, 0)
    async for result in iter_results(redis, batch):
        kind = kind_of(result)
        lines[kind] += 1
        pending[kind] += encoded(result)
        while len(pending[kind]) >= PART_BYTES:  # the results of a large batch never all in memory
            written[kind] += await _push(redis, parts[kind], pending[kind], PART_BYTES, ttl_s)
    for kind in OUTPUT_KINDS:
        if pending[kind]:
            written[kind] += await _push(redis, parts[kind], pending[kind], len(pending[kind]), ttl_s)
    return {kind: OutputSize(lines[kind], written[kind]) for kind in OUTPUT_KINDS}


async def _push(redis: Redis, key: str, pending: bytearray, size: int, ttl_s: int) -> int:
    """Move the first ``size`` bytes of ``pending`` to the end of the list ``key``."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, bytes(pending[:size]))
        pipe.expire(key, ttl_s)
        await pipe.execute()
    del pending[:size]
    return size
