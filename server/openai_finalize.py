"""Finalizing an OpenAI batch whose requests have all ended: its output and error files are written
once, into Redis, and then never change (a retry or a delete of the askq batch later leaves them as
they were, and their ``bytes`` always match their content).

One process finalizes a batch: it claims ``finalizing_at``, writes each file's parts to a draft list
of its own, then in one transaction, only while its claim still stands, renames the drafts to the
files' parts, saves the files' objects and marks the batch ended. A second process finalizing at once
loses the claim or the transaction and leaves nothing behind.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from common import keys
from server import openai_files
from server.openai_output import OUTPUT, OUTPUT_KINDS, OutputSize, write_outputs

STALE_FINALIZE_S = 300
"""A finalize begun this long ago and not done (its process died) is done again by the next read."""
ENDED = ("failed_at", "completed_at", "cancelled_at")


async def finalize(redis: Redis, batch_id: str, claimed: str | None, retention_s: int) -> None:
    """Write the files and end the batch, unless another process is doing it (``claimed``: the
    ``finalizing_at`` the caller read)."""
    key = keys.openai_batch(batch_id)
    claim = await _claim(redis, key, claimed)
    if claim is None:
        return
    ttl_s = await redis.ttl(key)
    ttl_s = ttl_s if ttl_s > 0 else retention_s  # a key without a TTL (-1) still has files that expire
    drafts = {
        kind: keys.openai_file_draft(openai_files.output_file_id(batch_id, kind), claim)
        for kind in OUTPUT_KINDS
    }
    try:
        sizes = await write_outputs(redis, batch_id, drafts, ttl_s)
        await _commit(redis, batch_id, claim, sizes, drafts, ttl_s)
    finally:
        await redis.delete(*drafts.values())  # renamed when committed: only a lost claim's are left


async def _claim(redis: Redis, key: str, seen: str | None) -> str | None:
    """This process's claim (its ``finalizing_at``), or None while another's stands."""
    now = f"{time.time():.6f}"
    if seen is None:
        return now if await redis.hsetnx(key, "finalizing_at", now) else None  # type: ignore[misc]
    if time.time() - float(seen) < STALE_FINALIZE_S:
        return None
    async with redis.pipeline(transaction=True) as pipe:  # retake the dead claim, if still the one seen
        await pipe.watch(key)
        if await pipe.hget(key, "finalizing_at") != seen.encode():  # type: ignore[misc]
            return None
        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        pipe.hset(key, "finalizing_at", now)
        try:
            await pipe.execute()
        except WatchError:
            return None
    return now


async def _commit(
    redis: Redis, batch_id: str, claim: str, sizes: dict[str, OutputSize], drafts: dict[str, str], ttl_s: int
) -> None:
    key = keys.openai_batch(batch_id)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            await pipe.watch(key)
            claimed, cancelling, *ended = await pipe.hmget(key, ["finalizing_at", "cancelling_at", *ENDED])  # type: ignore[misc]
            if claimed != claim.encode() or any(ended):
                return  # another process retook it, or ended it
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            now = time.time()
            fields = _save_files(pipe, batch_id, sizes, drafts, int(now), ttl_s)
            fields["cancelled_at" if cancelling else "completed_at"] = f"{now:.3f}"
            pipe.hset(key, mapping=fields)
            try:
                await pipe.execute()
                return
            except WatchError:  # the batch changed meanwhile (a late cancel): look again
                continue


def _save_files(
    pipe: Pipeline, batch_id: str, sizes: dict[str, OutputSize], drafts: dict[str, str], now: int, ttl_s: int
) -> dict[str, str]:
    """Queue the files' saving on ``pipe``; the batch fields naming them."""
    fields: dict[str, str] = {}
    for kind, size in sizes.items():
        if not size.lines:
            continue  # no such file, as OpenAI: no error file when every request succeeded
        file_id = openai_files.output_file_id(batch_id, kind)
        stored = openai_files.StoredFile(
            file_id, size.size, now, f"{batch_id}_{kind}.jsonl", openai_files.OUTPUT_PURPOSE, now + ttl_s
        )
        pipe.rename(drafts[kind], keys.openai_file_parts(file_id))
        pipe.expire(keys.openai_file_parts(file_id), ttl_s)
        pipe.hset(keys.openai_file(file_id), mapping=stored.mapping())
        pipe.expire(keys.openai_file(file_id), ttl_s)
        fields["output_file_id" if kind == OUTPUT else "error_file_id"] = file_id
    return fields
