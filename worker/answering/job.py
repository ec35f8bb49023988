"""The arq job function: validate the payload, answer, record exactly one result, publish the end."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from redis.exceptions import RedisError

from common import keys
from common.config import AskqConfig
from common.errors import RedisUnavailableError
from common.events import EventType
from common.payload import JobPayload
from common.reconnect import describe, waits_out
from common.redis_health import data_lost
from common.replay import run_trail
from common.status import JobState
from common.tokens import estimate_tokens
from common.usage import CUT_AT_MAX_TOKENS
from worker.answering.chat_request import build_request
from worker.answering.job_run import run_or_give_up
from worker.answering.provider import ChatRequest
from worker.answering.publisher import EventPublisher
from worker.answering.run_outcomes import LostRuns, NotStarted, Outcome, Recorded
from worker.answering.store import JobStore
from worker.context import WorkerContext
from worker.queue.rejections import PayloadKind, reject, validated

log = structlog.get_logger(__name__)

STOPPED = "the worker is stopping; the job goes back to the queue and starts again"
ANSWER_PAYLOAD = PayloadKind(JobPayload, "job", names=lambda p: p.job_id, stored_as=lambda p: p.job_id)


async def answer(ctx: WorkerContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Answer one question. Returns a short summary to arq; the result itself lives in askq's keys."""
    payload, refusal = validated(ANSWER_PAYLOAD, ctx, args, kwargs)
    if payload is None:
        return await reject(ctx, refusal)  # never executed: refused and recorded
    with structlog.contextvars.bound_contextvars(job_id=payload.job_id, batch=payload.batch):
        try:
            return await _answer(ctx, payload)
        except Exception as exc:
            if not _is_redis_failure(exc):
                raise
            # The record could not be written (Redis full or away past the store's wait): arq must
            # not finish the job, or its record would stay queued or running with no job behind it.
            # Left alone, its lease ends and it is claimed again, from what its record says.
            if "abandoned" in ctx:
                ctx["abandoned"].add(payload.job_id)
            log.warning("job left to run again: its record could not be written", error=describe(exc))
            return {"state": "abandoned"}


def _is_redis_failure(exc: BaseException) -> bool:
    return isinstance(exc, RedisError | RedisUnavailableError) or waits_out(exc)


async def _answer(ctx: WorkerContext, payload: JobPayload) -> dict[str, Any]:
    store, leases = ctx["store"], ctx["leases"]
    token = leases.token
    start = await store.mark_running(payload.job_id, payload.batch, token=token)
    if start is NotStarted.FINISHED:
        log.info("skipped: already finished or unknown")
        return {"state": "skipped"}
    if start is NotStarted.TAKEN:
        return _disown(ctx, payload.job_id, "not started: another worker claimed it since")
    publisher = EventPublisher(ctx["relay"], payload.job_id, payload.batch, seq=start.seq, fenced=True)
    lost = start.lost
    if start.lost_run_ms is not None:
        lost += await _lost_run(ctx, payload, publisher, start.lost_run_ms)
    try:
        async with leases.hold(payload.job_id, fenced=True):
            outcome = await run_or_give_up(ctx, payload, publisher)
        # The end is numbered now and logged by the call that records the result: never apart.
        events = await _end_events(publisher, outcome, ctx["config"], payload)
        recorded = await store.finish(
            payload.job_id,
            payload.batch,
            outcome,
            seq=publisher.seq,
            token=token,
            events=events,
            lost=lost,
            prompt_tokens_per_attempt=_prompt_tokens(payload, outcome),
        )
        if recorded is Recorded.FENCED:
            return _disown(ctx, payload.job_id, "result dropped: another worker runs this job now")
        if recorded is Recorded.STORED:
            if "released" in ctx:
                ctx["released"].add(payload.job_id)
        else:
            publisher.withdraw_end(events)
            if await _announce_cancelled(store, payload, publisher, spent=outcome):
                return {"state": "cancelled"}
            if await _record_gone(ctx, payload):
                log.warning("result not stored: the job's record is gone", state=outcome.state.value)
                return {"state": "gone"}
            log.info("result dropped: another run recorded the job's end first")
            return {"state": "ended elsewhere"}
    except asyncio.CancelledError:
        if leases.gone(payload.job_id):
            if "disowned" in ctx:
                ctx["disowned"].add(payload.job_id)  # arq must not queue again a job nobody can record
            await _record_gone(ctx, payload)
            log.warning("result not stored: the job's record is gone; its run is stopped")
            raise
        if leases.lost(payload.job_id):
            _disown(ctx, payload.job_id, "stopped: another worker runs this job now")
            raise
        # Either `askq cancel` aborted the job (its record says so) or the worker is stopping and
        # the grace period is over: then the job goes back to the queue, announced.
        await _count_handed_back(ctx, payload, publisher)
        events = await publisher.end_event(EventType.RETRY, max(publisher.attempt, 1), error=STOPPED)
        recorded = await store.requeue(
            payload.job_id, payload.batch, seq=publisher.seq, token=token, events=events
        )
        if recorded is Recorded.STORED:
            log.info("returned to the queue: worker stopping")
            raise
        publisher.withdraw_end(events)
        if recorded is Recorded.FENCED:
            _disown(ctx, payload.job_id, "stopped: another worker runs this job now")
        else:
            await _announce_cancelled(store, payload, publisher)
        raise
    finally:
        publisher.discard_unsent()
    # A failed job is for someone to look at; a success or a cancel the user asked for is not.
    (log.warning if outcome.state is JobState.FAILED else log.info)(
        "job finished",
        state=outcome.state.value,
        attempts=outcome.attempts + lost.attempts,
        latency_ms=round(outcome.latency_ms),
        **({"error": outcome.error, "error_code": outcome.error_code} if outcome.error else {}),
    )
    return {"state": outcome.state.value, "attempts": outcome.attempts + lost.attempts}


def _disown(ctx: WorkerContext, job_id: str, why: str) -> dict[str, Any]:
    """This worker's run is a stray copy: arq's finish must leave the job's keys to their holder."""
    if "disowned" in ctx:
        ctx["disowned"].add(job_id)
    log.warning("lease lost", what=why)
    return {"state": "lost"}


async def _lost_run(
    ctx: WorkerContext, payload: JobPayload, publisher: EventPublisher, since_ms: int
) -> LostRuns:
    """The run before this one was lost: number on past its logged events, and count what it spent."""
    log_key, _ = publisher.feed
    trail = await run_trail(
        ctx["redis"], log_key, payload.job_id, since_ms=since_ms, started_at_s=since_ms / 1000
    )
    publisher.continue_after(trail.last)
    lost = LostRuns.of(trail.attempts, trail.text_bytes)
    await ctx["store"].count_lost_run(payload.job_id, lost, token=ctx["leases"].token)
    return lost


async def _count_handed_back(ctx: WorkerContext, payload: JobPayload, publisher: EventPublisher) -> None:
    """A run handed back (its worker stopping) or stopped by `askq cancel` was paid for: its attempts
    count in the cluster's metrics now, and in the record, which the next run's result adds up as it
    does a lost run's (its attempts; its tokens, estimated from the text it received)."""
    attempts, text_bytes = publisher.spent()
    if attempts:
        spent = LostRuns.of(attempts, text_bytes)
        await ctx["store"].count_lost_run(payload.job_id, spent, token=ctx["leases"].token)


def _prompt_tokens(payload: JobPayload, outcome: Outcome) -> int:
    """One attempt's prompt tokens: what the provider reported, else an estimate from the question."""
    if outcome.usage is not None and outcome.usage.prompt_tokens:
        return outcome.usage.prompt_tokens
    if payload.messages:
        return estimate_tokens("".join(str(message.content) for message in payload.messages))
    return estimate_tokens(payload.question)


async def _announce_cancelled(
    store: JobStore, payload: JobPayload, publisher: EventPublisher, *, spent: Outcome | None = None
) -> bool:
    """The record was cancelled while this run went on: its result is dropped, and readers told, by
    the call that marks the run stopped, after the run's events not sent yet (a retry logs after).
    ``spent``: the outcome of a run that went on to its end, whose attempts and usage that call counts
    (a run stopped midway counted its attempts already, as a handed-back run)."""
    pending = await publisher.pending()
    seq = publisher.seq + 1
    reason = await store.acknowledge_cancel(
        payload.job_id,
        payload.batch,
        seq=seq,
        attempt=max(publisher.attempt, 1),
        events=pending,
        spent=spent,
    )
    if reason is None:
        publisher.give_back(pending)
        return False
    publisher.used(seq)
    log.info("cancelled")
    return True


async def _record_gone(ctx: WorkerContext, payload: JobPayload) -> bool:
    """Whether the job's record is gone (its batch deleted, or Redis lost askq's data: said once)."""
    if await ctx["redis"].exists(keys.job_record(payload.job_id)):
        return False  # another run recorded the result first
    lineage = ctx.get("lineage")
    if lineage is not None and await lineage.lost(ctx["redis"]):
        log.error(data_lost(lineage.running() if lineage.running is not None else None))
        ctx["relay"].expire_again()
    return True


async def _end_events(
    publisher: EventPublisher, outcome: Outcome, config: AskqConfig, payload: JobPayload
) -> list[str]:
    kind = EventType.DONE if outcome.state is JobState.SUCCEEDED else EventType.FAILED
    # Only an unusual end is named: "stop" would add bytes to every job's last event.
    cut = outcome.finish_reason == CUT_AT_MAX_TOKENS
    return await publisher.end_event(
        kind,
        outcome.attempts,
        error=outcome.error or None,
        usage=outcome.usage,
        latency_ms=round(outcome.latency_ms, 1),
        finish_reason=outcome.finish_reason if outcome.finish_reason not in ("", "stop") else None,
        max_tokens=_max_tokens(build_request(payload, config)) if cut else None,
    )


def _max_tokens(request: ChatRequest) -> int | None:
    cap = request.params.get("max_completion_tokens", request.params.get("max_tokens"))
    return cap if isinstance(cap, int) else None
