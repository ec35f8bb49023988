"""arq ``WorkerSettings`` built from ``jobs.yaml``; clients made in on_startup, closed in on_shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from typing import Any, cast

import structlog
from arq.worker import func
from threadpoolctl import threadpool_limits

from common import keys
from common.config import AskqConfig, load_config
from common.reconnect import describe, waits_out
from common.redis_health import LineageWatch, persistence_warning
from common.redis_url import arq_settings, redact, redis_url
from common.redis_wire import pack_with_hiredis
from common.serializer import job_serializer
from worker.answering.admission import GateMemory
from worker.answering.client import embeddings_client, provider_client
from worker.answering.deadline import QUEUE_WAIT_S
from worker.answering.job import answer
from worker.answering.pacing import configured_pace
from worker.answering.provider import ChatProvider
from worker.answering.relay import EventRelay
from worker.answering.store import JobStore
from worker.context import WorkerContext
from worker.knowledge.senders import retriever
from worker.queue.heartbeat import Heartbeat, worker_id
from worker.queue.leases import LeaseKeeper
from worker.queue.rejections import tolerant_deserializer, unreadable_function

log = structlog.get_logger(__name__)

JOB_TIMEOUT_GRACE_S = 10.0
"""arq's own timeout comes this long after askq's, leaving time to record the failure."""
ARQ_RESULT_KEEP_S = 0
"""arq keeps no copy of a job's result: askq's record is the result, and arq's copy (the whole
payload again, serialized and written per job) cost CPU and Redis memory for nothing askq reads."""
QUESTIONS = "questions"
"""What the questions worker serves, as its start and stop lines say (the schedules worker of the same
process runs the same startup: without it, its lines were the same)."""
SETTLES_GRACE_S = 2.0
"""At a stop, how long the token pace's last settles may take before they are dropped (which only
leaves the pace a little slower)."""
JOBS_PER_SLOT = 2
"""``--concurrency N`` lets a worker hold at least this many jobs per slot, as the defaults do."""


def shared_provider(config: AskqConfig) -> dict[str, Any]:
    """The clients and semaphore that the questions and schedules workers of one process share."""
    client = provider_client(config)
    return {
        "client": client,
        "embeddings_client": embeddings_client(config) or client,
        "provider": ChatProvider(client),
        "semaphore": asyncio.Semaphore(config.limits.concurrency),
    }


async def close_shared(shared: dict[str, Any]) -> None:
    """Close what ``shared_provider`` opened."""
    await shared["client"].close()
    if shared["embeddings_client"] is not shared["client"]:
        await shared["embeddings_client"].close()


async def on_startup(raw_ctx: dict[str, Any]) -> None:
    ctx = cast(WorkerContext, raw_ctx)
    config = ctx["config"]
    pack_with_hiredis(ctx["redis"])
    if "client" not in ctx:
        ctx.update(shared_provider(config))  # type: ignore[typeddict-item]  # keys of WorkerContext
        ctx["owns_client"] = True
    ctx["store"] = JobStore(ctx["redis"], config.retention.ttl_s, config.stream)
    ctx["leases"] = LeaseKeeper(
        ctx["redis"],
        config.limits.lease_s,
        claims_lease=ctx.get("claims_lease", False),
        token=ctx.get("lease_token"),
    )
    ctx["leases"].start()
    ctx["gate_memory"] = GateMemory()
    # Places under the shared in-flight limit are held as leases are: renewed together.
    ctx["leases"].on_renewed(ctx["gate_memory"].in_flight.renew)
    ctx["relay"] = EventRelay(ctx["redis"], config.stream, config.retention.ttl_s, ctx["leases"])
    ctx["leases"].on_renewed(ctx["relay"].held_lease)
    ctx["relay"].start()
    if config.knowledge:
        # A knowledge search runs on the event loop: BLAS threads fighting over a core that another
        # worker holds made one 5-8x slower (the benchmark), and one loop gains little from two.
        threadpool_limits(limits=1, user_api="blas")
    embeddings = ctx["embeddings_client"]
    ctx["retriever"] = retriever(
        ctx["redis"],
        embeddings,
        config,
        ctx["semaphore"],
        ctx["gate_memory"],
        ChatProvider(embeddings).endpoint,
    )
    if "lineage" in ctx:  # the questions worker: one look at what Redis keeps, for the process
        await _look_at_redis(ctx)
    serves = ctx.get("serves", QUESTIONS)
    if serves == QUESTIONS:  # a worker counts once, not once per queue it serves
        token = ctx.get("lease_token") or secrets.token_hex(8)
        ctx["heartbeat"] = Heartbeat(ctx["redis"], worker_id(token), config.limits.lease_s)
        ctx["heartbeat"].start()
    log.info(
        "worker started",
        serves=serves,
        provider=str(ctx["client"].base_url),
        concurrency=config.limits.concurrency,
        pace=configured_pace(config),
        # The schedules worker's own max_jobs is its runs at once, not the questions' limit.
        **({"max_jobs": config.limits.max_jobs} if serves == QUESTIONS else {}),
    )


async def _look_at_redis(ctx: WorkerContext) -> None:
    """Warn when Redis has no persistence; remember askq's lineage, to tell later if Redis lost it."""
    try:
        warning = await persistence_warning(ctx["redis"])
        await ctx["lineage"].claim(ctx["redis"])
    except Exception as exc:
        if not waits_out(exc):
            raise
        # A full or restarting Redis: the poll waits it out; the lineage is claimed at its next look.
        log.warning("could not look at Redis's persistence and askq's lineage", error=describe(exc))
        return
    if warning is not None:
        log.warning(warning)


async def on_shutdown(raw_ctx: dict[str, Any]) -> None:
    ctx = cast(WorkerContext, raw_ctx)
    if "heartbeat" in ctx:
        await ctx["heartbeat"].aclose()
    if "leases" in ctx:
        await ctx["leases"].aclose()
    if "gate_memory" in ctx:
        await ctx["gate_memory"].in_flight.aclose()
        # Settles give back what ended calls did not use: let them land, briefly.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx["gate_memory"].pacing.drain(), SETTLES_GRACE_S)
        await ctx["gate_memory"].pacing.aclose()
    if "relay" in ctx:
        await ctx["relay"].aclose()
    if "retriever" in ctx:
        await ctx["retriever"].aclose()
    if "client" in ctx and ctx.get("owns_client"):
        await close_shared(cast(dict[str, Any], ctx))
    log.info("worker stopped", serves=ctx.get("serves", QUESTIONS))


def with_concurrency(config: AskqConfig, concurrency: int | None) -> AskqConfig:
    """The config with ``concurrency`` slots, and room for a started job waiting behind each one.

    A job holds its slot only for its provider call; starting it (a claim, its record) takes round
    trips. With a job already started and waiting, a freed slot is filled at once, and the calls in
    flight stay at ``concurrency``: measured at 0.87 of the bound with no job waiting, 0.95 with one.
    """
    if concurrency is None:
        return config
    max_jobs = max(config.limits.max_jobs, JOBS_PER_SLOT * concurrency)
    limits = config.limits.model_copy(update={"concurrency": concurrency, "max_jobs": max_jobs})
    return config.model_copy(update={"limits": limits})


def worker_settings(
    config: AskqConfig | None = None,
    *,
    url: str | None = None,
    concurrency: int | None = None,
    burst: bool = False,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``arq.Worker``; ``--concurrency`` raises ``max_jobs`` to twice it if needed.

    ``shared`` (from ``shared_provider``) is the client and semaphore to use, when the schedules
    worker of the same process uses them too; without it the worker makes its own.
    """
    config = with_concurrency(config or load_config(), concurrency)
    url = url or redis_url()
    log.debug("worker settings", redis=redact(url))
    return {
        "functions": [func(answer, name=keys.ANSWER_FUNCTION), unreadable_function()],  # type: ignore[arg-type]
        "queue_name": keys.QUEUE,
        "redis_settings": arq_settings(url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": config.limits.max_jobs,
        # askq's own deadline leaves out waits for the provider: up to outage_wait_s for one that is
        # away, QUEUE_WAIT_S for places and first bytes at a busy one (worker.answering.deadline).
        "job_timeout": config.limits.job_timeout_s
        + config.provider.outage_wait_s
        + QUEUE_WAIT_S
        + JOB_TIMEOUT_GRACE_S,
        "poll_delay": config.limits.poll_delay_s,
        "keep_result": ARQ_RESULT_KEEP_S,
        # One start more than askq allows, so that askq itself records the job as failed.
        "max_tries": config.limits.max_job_runs + 1,
        "job_completion_wait": math.ceil(config.limits.shutdown_grace_s),
        # `askq cancel` lists running jobs in arq's abort set; the worker running one cancels it.
        "allow_abort_jobs": True,
        "job_serializer": job_serializer,
        "job_deserializer": tolerant_deserializer,
        "ctx": {"config": config, "serves": QUESTIONS, "lineage": LineageWatch(), **(shared or {})},
        "burst": burst,
    }
