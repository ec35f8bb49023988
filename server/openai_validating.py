"""A batch while it is validating: the lease its creating server holds, and how validating ends.

The create makes the batch and its lease (``keys.openai_batch_lease``, ``limits.lease_s`` long) in one
transaction, renews the lease every third of that while it checks and enqueues the input file, and
ends validating with one call that also drops the lease. A batch found validating with no lease had
its creator die mid-submit (killed, its machine lost): the read that finds it ends it ``failed``
(``cancelled`` if a cancel came meanwhile), saying validation was interrupted, and cancels the
requests its creator had enqueued already. Nothing is ever left validating for good.

It is failed, not resumed: a resume would have a read (any ``GET``) take over a submit of up to
200 MB, from an input file that may have been deleted since, while another read tries the same; a
client that sees the failure creates the batch again, under a new id, so nothing runs twice.

Each end is one script that ends validating only if nothing ended it first: a creator that outlived
its lease (a stalled process) finds its batch failed, and cancels what it enqueued, rather than
marking it in progress under the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from common import keys
from common.config import AskqConfig
from producer.control import cancel_batch

log = structlog.get_logger(__name__)

INTERRUPTED = (
    "validation was interrupted: the server creating this batch stopped before it had enqueued its "
    "requests (any it had enqueued are cancelled); create the batch again"
)

# KEYS: the batch's hash, its lease. ARGV: now; 'in_progress' or 'ended'; errors (JSON, for 'ended');
# 'lapsed' to end it only if its lease has lapsed (a reader), '' for its creator (which drops the
# lease however it goes). Ends it only while it is still validating; 1 if this call ended it.
_END = """
if ARGV[4] == 'lapsed' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
else
  redis.call('DEL', KEYS[2])
end
local id, in_progress, failed, cancelled, cancelling = unpack(redis.call('HMGET', KEYS[1],
  'id', 'in_progress_at', 'failed_at', 'cancelled_at', 'cancelling_at'))
if not id or in_progress or failed or cancelled then return 0 end
if ARGV[2] == 'in_progress' then
  redis.call('HSET', KEYS[1], 'in_progress_at', ARGV[1])
else
  redis.call('HSET', KEYS[1], cancelling and 'cancelled_at' or 'failed_at', ARGV[1], 'errors', ARGV[3])
end
return 1
"""


def take_lease(pipe: Pipeline, batch_id: str, lease_s: float) -> None:
    """Queue the lease's first write on ``pipe``: the transaction that makes the batch."""
    pipe.set(keys.openai_batch_lease(batch_id), _holder(), px=int(lease_s * 1000))


@contextlib.asynccontextmanager
async def renewing(redis: Redis, batch_id: str, lease_s: float) -> AsyncIterator[None]:
    """Renew the batch's lease every third of ``lease_s`` until the block ends."""
    renewer = asyncio.create_task(_renew(redis, batch_id, lease_s))
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def _renew(redis: Redis, batch_id: str, lease_s: float) -> None:
    key, holder = keys.openai_batch_lease(batch_id), _holder()
    while True:
        await asyncio.sleep(lease_s / 3)  # a timer: the lease's renewal period, not a wait on anything
        try:
            await redis.set(key, holder, px=int(lease_s * 1000))
        except Exception as exc:  # Redis away a moment: the next renewal may make it in time
            log.warning("batch lease not renewed", batch=batch_id, error=str(exc))


def _holder() -> str:
    """Who holds a lease, for a person reading Redis: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def end_submitted(redis: Redis, batch_id: str) -> bool:
    """Mark the batch in progress, its requests enqueued; False if it had been ended meanwhile."""
    return await _end(redis, batch_id, "in_progress", None, lapsed_only=False)


async def end_unsubmitted(redis: Redis, batch_id: str, errors: list[dict[str, Any]]) -> bool:
    """Fail the batch with ``errors`` (cancelled instead if a cancel came while it was validating);
    False if it had been ended meanwhile."""
    return await _end(redis, batch_id, "ended", errors, lapsed_only=False)


async def end_if_abandoned(redis: Redis, batch_id: str, config: AskqConfig) -> bool:
    """For a reader of a validating batch: if its lease has lapsed, end it as interrupted and cancel
    what its creator enqueued. True if this call ended it."""
    if await redis.exists(keys.openai_batch_lease(batch_id)):
        return False  # its creator is alive: the common case, one round trip
    errors = [{"code": "server_error", "message": INTERRUPTED, "param": None, "line": None}]
    if not await _end(redis, batch_id, "ended", errors, lapsed_only=True):
        return False
    log.warning("batch validation interrupted: its creating server stopped", batch=batch_id)
    await cancel_enqueued(redis, batch_id, config)
    return True


async def _end(
    redis: Redis, batch_id: str, mode: str, errors: list[dict[str, Any]] | None, *, lapsed_only: bool
) -> bool:
    script = redis.register_script(_END)
    call_keys = [keys.openai_batch(batch_id), keys.openai_batch_lease(batch_id)]
    args = [f"{time.time():.3f}", mode, json.dumps(errors), "lapsed" if lapsed_only else ""]
    return bool(await script(keys=call_keys, args=args))


async def cancel_enqueued(redis: Redis, batch_id: str, config: AskqConfig) -> None:
    """Cancel the requests a submit that did not finish had enqueued: a failed batch runs none."""
    if await redis.exists(keys.batch_record(batch_id)):
        await cancel_batch(redis, batch_id, config)
