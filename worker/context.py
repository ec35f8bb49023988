"""The typed worker context: what ``on_startup`` builds once per process, plus arq's per-job keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # types only: the answering modules import this one, never the reverse at run time
    import asyncio
    from datetime import datetime

    from arq.connections import ArqRedis
    from openai import AsyncOpenAI

    from common.config import AskqConfig
    from common.redis_health import LineageWatch
    from worker.answering.admission import GateMemory
    from worker.answering.provider import ChatProvider
    from worker.answering.relay import EventRelay
    from worker.answering.store import JobStore
    from worker.knowledge.retrieval import Retriever
    from worker.queue.heartbeat import Heartbeat
    from worker.queue.leases import LeaseKeeper


class WorkerContext(TypedDict, total=False):
    # Set by arq.
    redis: ArqRedis
    job_id: str
    job_try: int
    enqueue_time: datetime
    score: int
    # Set by askq: `config` when the settings are built, the rest in on_startup.
    config: AskqConfig
    serves: str
    """Which worker of the process this is ("questions" or "schedules"), for its log lines."""
    claims_lease: bool
    """True under ``AskqWorker``, whose claim of a job already sets its in-progress key to the lease."""
    lease_token: str
    """Under ``AskqWorker``: what its claims write in a job's in-progress key, naming it the holder."""
    disowned: set[str]
    """Under ``AskqWorker``: ids of jobs whose run this worker lost to another; arq's finishing leaves
    their keys (the other worker's now) alone."""
    released: set[str]
    """Under ``AskqWorker``: ids of jobs whose finish already removed them from arq's keys, so arq's
    own finishing (a transaction per job) is skipped for them."""
    abandoned: set[str]
    """Under ``AskqWorker``: ids of jobs whose record could not be written; arq must not finish them,
    so they run again once their lease ends."""
    lineage: LineageWatch
    """The questions worker's memory of askq's lineage in Redis: tells when Redis lost its data."""
    client: AsyncOpenAI
    embeddings_client: AsyncOpenAI
    """The client of ``/embeddings``: ``client`` itself, unless ASKQ_EMBEDDINGS_BASE_URL names another."""
    owns_client: bool
    """False when the client is shared with the other worker of the process, which closes it."""
    provider: ChatProvider
    semaphore: asyncio.Semaphore
    store: JobStore
    leases: LeaseKeeper
    relay: EventRelay
    gate_memory: GateMemory
    retriever: Retriever
    heartbeat: Heartbeat
    """The questions worker's place in ``askq:workers`` (``askq_workers_alive``)."""
    """The process's knowledge bases (its copies of their matrices) and question batchers."""
