"""A batch's output and error files, made from its results in input order, in the Batch API's line
format: the lines ``askq results --format openai-batch`` writes, the succeeded ones in the output file
and the others in the error file. Written once, when the batch ends (``server.openai_finalize``)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from common.status import JobState
from producer.results import line_pages

OUTPUT = "output"
ERROR = "error"
OUTPUT_KINDS = (OUTPUT, ERROR)
PART_BYTES = 1 << 20
"""The largest value one part of a file's content takes in Redis."""


@dataclass(frozen=True)
class OutputSize:
    lines: int = 0
    size: int = 0


def kind_of(status: str) -> str:
    return OUTPUT if status == JobState.SUCCEEDED.value else ERROR


async def write_outputs(redis: Redis, batch: str, parts: dict[str, str], ttl_s: int) -> dict[str, OutputSize]:
    """Append each file's content to its list in ``parts`` (by kind), at most ``PART_BYTES`` an item:
    one pass over the results. How many lines and bytes each file has."""
    lines = dict.fromkeys(OUTPUT_KINDS, 0)
    pending = {kind: bytearray() for kind in OUTPUT_KINDS}
    written = dict.fromkeys(OUTPUT_KINDS, 0)
    async for page in line_pages(redis, batch, "openai-batch"):
        for status, line in page:
            kind = kind_of(status)
            lines[kind] += 1
            pending[kind] += line
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
