"""``askq delete``: a batch and everything askq keeps for it, gone.

Its running jobs are cancelled first (their workers abort them), so no worker writes for the batch
after it is gone; then, a page of jobs at a time, each job's record and arq keys, and last the
batch's own keys and its name in the index. A second delete of the same batch finds nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from common.status import JobState
from producer.batches import batch_status, job_id_pages
from producer.control import cancel_batch

STOP_WAIT_S = 10.0
"""How long a delete waits for workers to abort the batch's running jobs before deleting anyway."""
STOP_POLL_S = 0.1
RELAY_FLUSHES = 3
RUNNING = JobState.RUNNING.value.encode()


@dataclass(frozen=True)
class DeleteReport:
    batch: str
    jobs: int
    still_running: int
    """Jobs whose workers had not stopped them within ``STOP_WAIT_S``: their runs write nothing, as
    their records are gone, but may still send events for a moment."""


async def delete_batch(
    redis: Redis,
    batch: str,
    config: AskqConfig,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    stop_wait_s: float = STOP_WAIT_S,
) -> DeleteReport:
    """Delete the batch; ``on_progress(done, total)`` after each page. NotFoundError if unknown."""
    status = await batch_status(redis, batch, with_job_ids=False, with_latencies=False)
    running = await _running_jobs(redis, batch) if status.counts[JobState.RUNNING] else []
    await cancel_batch(redis, batch, config)
    still_running = await _wait_for_workers(redis, running, stop_wait_s) if running else 0
    if running:
        # A worker announces an abort through its event relay, which sends within a flush interval;
        # the log deleted before that send would be made again, without an expiry.
        await asyncio.sleep(RELAY_FLUSHES * config.stream.flush_interval_ms / 1000)
    total = status.total
    done = 0
    async for job_ids in job_id_pages(redis, batch):
        await _delete_jobs(redis, job_ids)
        done += len(job_ids)
        if on_progress is not None:
            on_progress(done, total)
    await redis.delete(
        keys.batch_items(batch),
        keys.batch_latencies(batch),
        keys.batch_halt(batch),
        keys.batch_log(batch),
        keys.batch_record(batch),
    )
    await redis.zrem(keys.BATCHES, batch)
    return DeleteReport(batch, done, still_running)


async def _running_jobs(redis: Redis, batch: str) -> list[str]:
    running: list[str] = []
    async for job_ids in job_id_pages(redis, batch):
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.job_record(job_id), record.STATE)
            states = await pipe.execute()
        running += [job_id for job_id, state in zip(job_ids, states, strict=True) if state == RUNNING]
    return running


async def _wait_for_workers(redis: Redis, job_ids: list[str], wait_s: float) -> int:
    """How many of the jobs still hold a worker's lease once they are let go, or when ``wait_s`` ends.

    The cancel marks their records at once; only the lease (arq's in-progress key, dropped when
    the run ends) says that the worker has stopped.
    """
    deadline = time.monotonic() + wait_s
    leases = [keys.arq_in_progress(job_id) for job_id in job_ids]
    while True:
        held = int(await redis.exists(*leases))
        if held == 0 or time.monotonic() >= deadline:
            return held
        await asyncio.sleep(STOP_POLL_S)  # workers abort on their own; this only polls for it


async def _delete_jobs(redis: Redis, job_ids: list[str]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.QUEUE, *job_ids)
        pipe.zrem(keys.ARQ_ABORT, *job_ids)
        pipe.zrem(keys.FINISHED, *job_ids)
        pipe.delete(
            *(
                key
                for job_id in job_ids
                for key in (
                    keys.job_record(job_id),
                    keys.arq_job(job_id),
                    keys.arq_in_progress(job_id),
                    keys.arq_retry(job_id),
                )
            )
        )
        await pipe.execute()
