"""One run of a job, up to its outcome: its knowledge retrieved, its question answered under its
deadline, and whatever goes wrong (a timeout, a knowledge base not built, the provider's refusal, a
bug) made the job's failure with its reason, never the worker's. ``worker.answering.job`` records it.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from common.errors import KnowledgeError, NotFoundError, ProviderError
from common.events import EventType
from common.payload import JobPayload
from common.sources import Source
from common.status import JobState
from worker.answering.answerer import Answerer
from worker.answering.chat_request import build_request
from worker.answering.deadline import QUEUE_WAIT_S, Deadline
from worker.answering.error_reasons import INTERNAL, LOST, TIMEOUT, error_reason
from worker.answering.gate import ProviderGate
from worker.answering.publisher import EventPublisher
from worker.answering.run_outcomes import Outcome
from worker.context import WorkerContext

log = structlog.get_logger(__name__)


async def run_or_give_up(ctx: WorkerContext, payload: JobPayload, publisher: EventPublisher) -> Outcome:
    """This run's outcome; failed unrun once the job was started ``limits.max_job_runs`` times."""
    runs = ctx.get("job_try", 1)
    max_runs = ctx["config"].limits.max_job_runs
    if runs > max_runs:
        error = f"started {runs - 1} times and its worker was lost or stopped each time; not run again"
        return Outcome(state=JobState.FAILED, attempts=0, error=error, error_code="lost", failed_reason=LOST)
    return await _outcome(ctx, payload, publisher)


async def _outcome(ctx: WorkerContext, payload: JobPayload, publisher: EventPublisher) -> Outcome:
    config = ctx["config"]
    started = time.monotonic()
    gate = ProviderGate(ctx["redis"], payload.batch, ctx["provider"].endpoint, config, ctx["gate_memory"])
    answerer = Answerer(ctx["provider"], ctx["semaphore"], config, publisher, gate)
    model = ""
    sources: tuple[Source, ...] | None = None
    try:
        request = build_request(payload, config)
        model = request.model
        # Our own deadline, inside arq's, so a job that runs too long is recorded as failed.
        async with asyncio.timeout(config.limits.job_timeout_s) as timeout:
            deadline = Deadline(timeout, config.provider.outage_wait_s + QUEUE_WAIT_S)
            # The question's embedding may wait out a provider that is away: not the job's own time.
            retrieving = ctx["retriever"].for_job(config, payload)
            retrieved = await deadline.excused(retrieving, config.provider.outage_wait_s)
            if retrieved is not None:
                sources = tuple(retrieved.sources)
                # Before the first start: readers show where the answer comes from before it comes.
                publisher.emit(EventType.SOURCES, publisher.attempt, sources=retrieved.sources)
                request = build_request(payload, config, retrieved.knowledge)
            result = await answerer.answer(request, deadline)
    except TimeoutError:
        error, code, reason = f"job timed out after {config.limits.job_timeout_s:g} s", "timeout", TIMEOUT
    except KnowledgeError as exc:
        # Not built, or built for another model: never answered without its knowledge.
        error, code, reason = str(exc), "knowledge", error_reason(exc)
    except (ProviderError, NotFoundError) as exc:
        code = str(getattr(exc, "status_code", None) or type(exc).__name__)
        error, reason = str(exc), error_reason(exc)
    except Exception as exc:
        # A bug must fail this one job with a reason, never the batch or the worker.
        log.exception("job crashed")
        error, code, reason = f"internal error: {type(exc).__name__}: {exc}", "internal", INTERNAL
    else:
        return Outcome(
            state=JobState.SUCCEEDED,
            attempts=result.attempts,
            answer=result.text,
            usage=result.usage,
            finish_reason=result.finish_reason,
            model=model,
            latency_ms=(time.monotonic() - started) * 1000,
            first_token_ms=result.first_token_ms,
            sources=sources,
            attempt_ends=answerer.attempt_ends,
            retried=answerer.retried,
        )
    return Outcome(
        state=JobState.FAILED,
        attempts=max(answerer.attempts, 1),
        error=error,
        error_code=code,
        model=model,
        latency_ms=(time.monotonic() - started) * 1000,
        sources=sources,
        attempt_ends=answerer.attempt_ends,
        retried=answerer.retried,
        failed_reason=reason,
    )
