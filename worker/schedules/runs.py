"""Scheduled summary runs: the arq jobs of the schedules queue, from claim to summary file.

A run is claimed for its fire time (once, however many workers saw the tick), recorded as running,
then reads its source, summarizes with map-reduce (every call streaming into the run's log, which
``askq tail RUN`` follows), writes the file and records the end. Only then is its input marked as
read, so a failed run is simply redone by the next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from common import keys, record, runs
from common.confine import OutsideRootError, confined_folder
from common.errors import InputError, ProviderError
from common.events import EventType
from common.files import write_atomically
from common.replay import last_event_in_log
from common.runs import RunPayload, Trigger
from common.schedules import AnswersSource, ScheduleConfig
from common.status import JobState
from common.tokens import BudgetError, call_budget
from common.usage import Usage
from worker.answering.publisher import EventPublisher
from worker.context import WorkerContext
from worker.queue.rejections import PayloadKind, reject, validated
from worker.schedules.batch_map import batch_map_step
from worker.schedules.calls import RunCalls
from worker.schedules.mapreduce import MapReduce, SummaryError
from worker.schedules.output import RunReport, output_path, render
from worker.schedules.run_store import RunStore
from worker.schedules.sources import Collected, collect_answers, collect_files

log = structlog.get_logger(__name__)

STOPPED = "the worker is stopping; the run starts again on the next worker"
RUN_PAYLOAD = PayloadKind(RunPayload, "run", names=lambda p: p.run_id, stored_as=runs.stored_as)


async def summarize(ctx: WorkerContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """arq job: a run asked for by ``askq schedule run`` or by a worker catching up a missed tick."""
    payload, refusal = validated(RUN_PAYLOAD, ctx, args, kwargs)
    if payload is None:
        return await reject(ctx, refusal)
    return await run_schedule(ctx, payload)


async def scheduled_tick(ctx: WorkerContext) -> dict[str, Any]:
    """arq cron job of every schedule: arq's job id names the schedule and the fire time."""
    name, fire_ms = keys.schedule_of_cron_job(ctx["job_id"])
    run_id = runs.run_id(name, runs.from_ms(fire_ms), Trigger.SCHEDULED)
    payload = RunPayload(schedule=name, run_id=run_id, trigger=Trigger.SCHEDULED, fire_ms=fire_ms)
    return await run_schedule(ctx, payload)


async def run_schedule(ctx: WorkerContext, payload: RunPayload) -> dict[str, Any]:
    with structlog.contextvars.bound_contextvars(schedule=payload.schedule, run_id=payload.run_id):
        schedule = ctx["config"].schedules.get(payload.schedule)
        if schedule is None:
            log.error("skipped: no such schedule in this worker's jobs.yaml")
            return {"state": "skipped", "reason": "unknown schedule"}
        store = RunStore(ctx["redis"], ctx["config"].retention.ttl_s)
        if await store.finished(payload.run_id):
            return {"state": "skipped", "reason": "already finished"}
        if payload.trigger is not Trigger.MANUAL and not await store.claim(
            payload.schedule, payload.fire_ms, ctx["job_id"]
        ):
            log.info("skipped: this fire time was run already")
            return {"state": "skipped", "reason": "claimed by another run"}
        return await _run(ctx, payload, schedule, store)


async def _run(
    ctx: WorkerContext, payload: RunPayload, schedule: ScheduleConfig, store: RunStore
) -> dict[str, Any]:
    config = ctx["config"]
    model = schedule.model or config.provider.model
    fire = runs.from_ms(payload.fire_ms).astimezone(schedule.zone)
    identity = {
        runs.SCHEDULE: payload.schedule,
        runs.TRIGGER: payload.trigger.value,
        runs.FIRE_AT: fire.isoformat(),
    }
    await store.start(payload.run_id, {**identity, record.QUESTION: schedule.prompt, record.MODEL: model})
    publisher = EventPublisher(ctx["relay"], payload.run_id, None)
    # A run started again (its worker was lost) numbers on from its log.
    last = await last_event_in_log(ctx["redis"], keys.job_log(payload.run_id), payload.run_id)
    publisher.continue_after(last)
    publisher.emit(EventType.START, 1, model=model)
    started = time.monotonic()
    try:
        async with ctx["leases"].hold(ctx["job_id"]), asyncio.timeout(schedule.timeout_s):
            done = await _summarize(ctx, payload, schedule, fire, model, publisher, store)
    except asyncio.CancelledError:
        publisher.emit(EventType.RETRY, 1, error=STOPPED)
        raise
    except Exception as exc:
        error = _failure(exc, schedule)
        await store.finish(
            payload.run_id,
            payload.schedule,
            JobState.FAILED,
            {**identity, record.ERROR: error},
            Usage(),
            None,
        )
        publisher.emit(EventType.FAILED, 1, error=error, latency_ms=_ms_since(started))
        log.warning("run failed", error=error)
        return {"state": JobState.FAILED.value, "error": error}
    fields = {**identity, record.ANSWER: done.text, runs.OUTPUT: done.path, record.ATTEMPTS: "1"}
    await store.finish(
        payload.run_id, payload.schedule, JobState.SUCCEEDED, fields, done.usage, done.window_end
    )
    publisher.emit(EventType.DONE, 1, usage=done.usage, latency_ms=_ms_since(started))
    log.info("run finished", output=done.path, total_tokens=done.usage.total_tokens)
    return {"state": JobState.SUCCEEDED.value, "output": done.path}


@dataclass(frozen=True)
class _Done:
    text: str
    path: str
    usage: Usage
    window_end: float


async def _summarize(
    ctx: WorkerContext,
    payload: RunPayload,
    schedule: ScheduleConfig,
    fire: datetime,
    model: str,
    publisher: EventPublisher,
    store: RunStore,
) -> _Done:
    window_start, collected = await _collect(ctx, payload.schedule, schedule, fire, store)
    mapreduce: MapReduce | None = None
    summary: str | None = None
    if collected.items:
        budget = call_budget(schedule.context_tokens, ctx["config"].provider.max_tokens, schedule.prompt)
        calls = RunCalls(ctx, payload.run_id, schedule, model, budget.output_tokens, publisher)
        map_step = batch_map_step(calls) if schedule.batch_api else None
        mapreduce = MapReduce(calls.streamed, budget, map_step)
        summary = await mapreduce.summarize(collected.items)
    stats = mapreduce.stats if mapreduce is not None else None
    report = RunReport(
        schedule=payload.schedule,
        run_id=payload.run_id,
        trigger=payload.trigger.value,
        window_start=window_start,
        window_end=fire,
        counts=collected.counts,
        chunks=stats.chunks if stats else 0,
        calls=stats.calls if stats else 0,
        reduce_levels=stats.reduce_levels if stats else 0,
        usage=stats.usage if stats else Usage(),
        map_usage=stats.map_usage if stats else Usage(),
        batch_api=schedule.batch_api,
        model=model,
    )
    text = render(report, summary, ctx["config"].prices)
    if summary is None:
        publisher.delta(text, "summary")  # nothing streamed: show the reader the file
    path = await asyncio.to_thread(_write_summary, ctx["config"].root, schedule, payload, fire, text)
    await collected.commit()
    return _Done(text=text, path=str(path), usage=report.usage, window_end=fire.timestamp())


def _write_summary(
    root: Path, schedule: ScheduleConfig, payload: RunPayload, fire: datetime, text: str
) -> Path:
    folder = confined_folder(root, Path(schedule.output) / payload.schedule)
    path = output_path(folder, fire, payload.run_id)
    write_atomically(path, text)
    return path


async def _collect(
    ctx: WorkerContext, name: str, schedule: ScheduleConfig, fire: datetime, store: RunStore
) -> tuple[datetime | None, Collected]:
    source = schedule.source
    if not isinstance(source, AnswersSource):
        return None, await collect_files(ctx["redis"], name, source, ctx["config"].root)
    previous_end = (await store.schedule_record(name)).get(runs.WINDOW_END)
    if previous_end is not None:
        start = datetime.fromtimestamp(float(previous_end), UTC).astimezone(schedule.zone)
    else:
        start = schedule.period_before(fire)
    return start, await collect_answers(ctx["redis"], source, start, fire)


def _failure(exc: Exception, schedule: ScheduleConfig) -> str:
    if isinstance(exc, TimeoutError):
        return f"run timed out after {schedule.timeout_s:g} s (schedules.*.timeout_s)"
    if isinstance(exc, ProviderError | SummaryError | BudgetError | OutsideRootError | InputError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not read or write a file: {exc}"
    log.exception("run crashed")
    return f"internal error: {type(exc).__name__}: {exc}"


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
