"""``askq delete``: a batch and everything askq keeps for it, gone.

The batch is cancelled first: its queued jobs can no longer start, and the workers running the
others are asked to abort them. The delete waits (``STOP_WAIT_S`` at most) for those workers to let
go, then removes, a page of jobs at a time, each job's record and arq keys, and last the batch's own
keys and its name in the index. A second delete of the same batch finds nothing.

A run that outlives the wait keeps its abort request, and records nothing (its record is gone), but
its worker may still send an event or two as it stops. The batch's event log is therefore replaced
by an empty one that expires after ``LATE_EVENTS_S``: a late event lands there and goes with it,
rather than making the log anew with no expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from common import keys
from common.config import AskqConfig
from common.reconnect import is_out_of_memory
from producer.batches import batch_status, job_id_pages
from producer.control import cancel_batch

STOP_WAIT_S = 10.0
"""How long a delete waits for workers to abort the batch's running jobs before deleting anyway."""
STOP_POLL_S = 0.1
LATE_EVENTS_S = 600
"""How long the emptied event log of a batch deleted while jobs ran is kept for their last events."""


@dataclass(frozen=True)
class DeleteReport:
    batch: str
    jobs: int
    still_running: int
    """Jobs whose workers had not let go within ``STOP_WAIT_S``: asked to abort, they record nothing."""

    def to_json(self) -> dict[str, object]:
        """What ``askq delete --json`` prints and ``DELETE /api/batches/{batch}`` answers."""
        return {"batch": self.batch, "deleted_jobs": self.jobs, "still_running": self.still_running}


async def delete_batch(
    redis: Redis,
    batch: str,
    config: AskqConfig,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    stop_wait_s: float = STOP_WAIT_S,
) -> DeleteReport:
    """Delete the batch; ``on_progress(done, total)`` after each page. NotFoundError if unknown."""
    total = (await batch_status(redis, batch, with_job_ids=False, with_latencies=False)).total
    aborted = await _cancel_unless_full(redis, batch, config)
    held = await _still_held(redis, aborted, stop_wait_s) if aborted else set()
    done = 0
    async for job_ids in job_id_pages(redis, batch):
        await _delete_jobs(redis, job_ids, held)
        done += len(job_ids)
        if on_progress is not None:
            on_progress(done, total)
    # Not a MULTI: a Redis at maxmemory refuses every command of one, and deleting is what frees it.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(
            keys.batch_items(batch),
            keys.batch_latencies(batch),
            keys.batch_first_tokens(batch),
            keys.batch_halt(batch),
            keys.batch_log(batch),
            keys.batch_live(batch),
            keys.batch_record(batch),
        )
        if aborted:
            _empty_log(pipe, keys.batch_log(batch))
        # One field per finished job: a big hash, freed in the background rather than blocking Redis.
        pipe.unlink(keys.batch_results(batch))
        pipe.zrem(keys.BATCHES, batch)
        for reply in await pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception) and not is_out_of_memory(reply):
                raise reply  # a full Redis refuses only the emptied log, which the keys' deletion frees
    return DeleteReport(batch, done, len(held))


async def _cancel_unless_full(redis: Redis, batch: str, config: AskqConfig) -> list[str]:
    """Cancel the batch's jobs first (ids of the running ones asked to abort). A full Redis refuses
    that write: its workers then find the records gone, and stop those runs themselves."""
    try:
        return (await cancel_batch(redis, batch, config)).aborted
    except ResponseError as exc:
        if not is_out_of_memory(exc):
            raise
        return []


def _empty_log(pipe: Pipeline, log_key: str) -> None:
    """An empty stream in the log's place, with an expiry that a late event's XADD keeps."""
    pipe.xadd(log_key, {keys.LOG_FIELD: "[]"}, maxlen=0, approximate=False)
    pipe.expire(log_key, LATE_EVENTS_S)


async def _still_held(redis: Redis, job_ids: list[str], wait_s: float) -> set[str]:
    """The jobs still leased by a worker once they are let go, or when ``wait_s`` ends.

    The cancel marks their records at once; only the lease (arq's in-progress key, dropped when
    the run ends) says that the worker has stopped.
    """
    deadline = time.monotonic() + wait_s
    while True:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(keys.arq_in_progress(job_id))
            leased = await pipe.execute()
        held = {job_id for job_id, exists in zip(job_ids, leased, strict=True) if exists}
        if not held or time.monotonic() >= deadline:
            return held
        await asyncio.sleep(STOP_POLL_S)  # workers abort on their own; this only polls for it


async def _delete_jobs(redis: Redis, job_ids: list[str], held: set[str]) -> None:
    async with redis.pipeline(transaction=False) as pipe:  # not a MULTI: see delete_batch
        pipe.zrem(keys.QUEUE, *job_ids)
        pipe.zrem(keys.FINISHED, *job_ids)
        # A run still going keeps its abort request, so that its worker stops it when it can.
        let_go = [job_id for job_id in job_ids if job_id not in held]
        if let_go:
            pipe.zrem(keys.ARQ_ABORT, *let_go)
        pipe.delete(
            *(
                key
                for job_id in job_ids
                for key in (keys.job_record(job_id), keys.arq_job(job_id), keys.arq_retry(job_id))
            ),
            *(keys.arq_in_progress(job_id) for job_id in let_go),
        )
        await pipe.execute()
