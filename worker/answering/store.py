"""The worker's writes to the job record and the batch counters, each one atomic Lua call.

A state change moves one unit between the batch's per-state counters in the same call that changes
the job, so ``askq status`` reads counters that always add up. A job already in a terminal state is
never moved again: a job run twice (at-least-once delivery) is recorded once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from common import keys, metrics, record
from common.config import StreamConfig
from common.live_log import keep_flag
from common.reconnect import Backoff, OutageLog, waits_out
from common.replay import encode_entry
from common.status import TERMINAL_STATES, JobState
from worker.answering.error_reasons import INVALID_PAYLOAD
from worker.answering.job_end import end_writes, spent_metrics
from worker.answering.relay import log_ttl_s
from worker.answering.run_outcomes import NO_LOSS, LostRuns, NotStarted, Outcome, Recorded, RunStart
from worker.answering.store_scripts import CANCELLED, COUNT_LOST, FENCED, FINISHED_AT, START, TRANSITION

log = structlog.get_logger(__name__)

STORE_OUTAGE_S = 60.0
"""How long a job waits out a Redis outage to record its state before giving up."""
REJECTED_MAX = 1000
"""The rejected log keeps about this many latest entries."""
_TERMINAL_JSON = json.dumps(sorted(state.value for state in TERMINAL_STATES))
_LOST_FIELD = metrics.attempt(metrics.AttemptOutcome.LOST, metrics.NO_STATUS)
"""The attempts of a run lost or handed back: how each ended is not known."""


class JobStore:
    def __init__(self, redis: Redis, ttl_s: int, stream: StreamConfig | None = None) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        stream = stream or StreamConfig()
        self._log_max_entries = stream.log_max_entries
        self._keep = keep_flag(stream.keep_ended_events)
        self._log_ttl_s = log_ttl_s(ttl_s)
        self._transition = redis.register_script(TRANSITION)
        self._start = redis.register_script(START)
        self._cancelled = redis.register_script(CANCELLED)
        self._count_lost = redis.register_script(COUNT_LOST)
        self._finished_at = redis.register_script(FINISHED_AT)
        self._outage = OutageLog(log, "redis unavailable; job records wait for it")

    async def mark_running(
        self, job_id: str, batch: str, *, token: str | None = None
    ) -> RunStart | NotStarted:
        """Move a queued job to running, owned by the worker of lease ``token`` (which its in-progress
        key must hold); ``NotStarted`` says why it must not run."""
        fields = {record.STARTED_AT: str(time.time())}
        if token is not None:
            fields[record.OWNER] = token
        args = self._args(job_id, JobState.RUNNING, fields, token=token)
        previous, seq, was_started, lost_attempts, lost_tokens, refused = await self._call_through_outage(
            self._start, self._keys(job_id, batch), args
        )
        if refused:
            return NotStarted.TAKEN
        if not previous:
            return NotStarted.FINISHED
        lost = previous == JobState.RUNNING.value.encode() and was_started
        return RunStart(
            int(seq),
            int(float(was_started) * 1000) if lost else None,
            LostRuns(int(lost_attempts), int(lost_tokens)),
        )

    async def count_lost_run(self, job_id: str, lost: LostRuns, *, token: str | None = None) -> None:
        """Add what a lost run spent to the job's record (once: by the run that found it lost)."""
        if lost.attempts or lost.output_tokens_est:
            args: list[str | int | float] = [token or "", lost.attempts, lost.output_tokens_est, _LOST_FIELD]
            script_keys = [keys.job_record(job_id), keys.METRICS]
            await self._call_through_outage(self._count_lost, script_keys, args)

    async def requeue(
        self, job_id: str, batch: str, *, seq: int, token: str | None = None, events: list[str] | None = None
    ) -> Recorded:
        """A running job handed back to the queue (its worker is stopping), and ``events`` (the run's
        last, its announcement included) logged in the same call: a run starting at once elsewhere
        logs after them.

        ``seq`` is the last event number the run uses, its announcement included.
        """
        fields = {record.SEQ: str(seq)}
        args = self._args(job_id, JobState.QUEUED, fields, token=token, events=events, batch=batch)
        return await self._run(job_id, batch, args)

    async def reject(self, arq_job_id: str, reason: str) -> None:
        """Record a job refused unrun: in the rejected log and, if it names a known job, as its result."""
        await self._redis.xadd(
            keys.REJECTED, {"arq_job_id": arq_job_id, "reason": reason}, maxlen=REJECTED_MAX, approximate=True
        )
        await self._redis.expire(keys.REJECTED, self._ttl_s)
        # Only the record the job is stored as: a payload naming another job must not fail that one.
        batch = await self._redis.hget(keys.job_record(arq_job_id), record.BATCH)  # type: ignore[misc]  # redis-py types sync and async alike
        if batch is not None:
            outcome = Outcome(
                state=JobState.FAILED,
                attempts=0,
                error=reason,
                error_code="invalid_payload",
                failed_reason=INVALID_PAYLOAD,
            )
            await self.finish(arq_job_id, batch.decode(), outcome)

    async def acknowledge_cancel(
        self,
        job_id: str,
        batch: str,
        *,
        seq: int,
        attempt: int,
        events: list[str],
        spent: Outcome | None = None,
    ) -> str | None:
        """Why the job was cancelled, when its record says it was; None otherwise.

        When it was, the same call logs ``events`` (the run's not yet sent) and the ``cancelled`` event
        as number ``seq``, counts it as used, and marks the run stopped: a retry after that numbers
        after every event this run logged. ``spent``: the run's outcome, when it ran to its end after
        the cancel: its attempts and the provider's usage count in the cluster's metrics, once.
        """
        log_key, channel = keys.event_feed(job_id, batch)
        args: list[str | int | float] = [
            seq,
            attempt,
            f"{time.time():.6f}",
            encode_entry(events),
            channel,
            self._log_max_entries,
            self._log_ttl_s,
            job_id,
            self._keep,
            json.dumps(spent_metrics(spent) if spent is not None else {}),
        ]
        script_keys = [
            keys.job_record(job_id),
            log_key,
            keys.batch_live(batch),
            keys.batch_record(batch),
            keys.METRICS,
        ]
        reason = await self._call_through_outage(self._cancelled, script_keys, args)
        return reason.decode() if isinstance(reason, bytes) else None

    async def finish(
        self,
        job_id: str,
        batch: str,
        outcome: Outcome,
        *,
        seq: int | None = None,
        token: str | None = None,
        events: list[str] | None = None,
        lost: LostRuns = NO_LOSS,
        prompt_tokens_per_attempt: int = 0,
    ) -> Recorded:
        """Record the one result of a job, and remove it from arq's keys and queue, and log ``events``
        (the run's last, its end included) in the same call.

        ``seq`` is the last event number the run uses, its end event included. ``lost``: what earlier
        runs that were lost spent (``worker.answering.job_end``).
        """
        writes = end_writes(outcome, lost, prompt_tokens_per_attempt, seq)
        args = self._args(
            job_id,
            outcome.state,
            writes.fields,
            latency_ms=outcome.latency_ms,
            first_token_ms=outcome.first_token_ms,
            counters=writes.counters,
            token=token,
            events=events,
            batch=batch,
            metrics=writes.metrics,
        )
        recorded = await self._run(job_id, batch, args)
        if recorded is not Recorded.ENDED_ELSEWHERE:
            return recorded
        # The job was ended already, maybe by this very call: a reset can lose the reply of a script
        # that ran, and the retry then finds the job ended. Its finished_at tells whose end it is.
        ended_at = await self._call_through_outage(self._finished_at, [keys.job_record(job_id)], [])
        own = isinstance(ended_at, bytes) and ended_at.decode() == writes.fields[record.FINISHED_AT]
        return Recorded.STORED if own else recorded

    async def _run(self, job_id: str, batch: str, args: list[str | int | float]) -> Recorded:
        """One transition (``args`` from ``_args``), waited out across an outage."""
        previous = await self._call_through_outage(self._transition, self._keys(job_id, batch), args)
        previous = previous.decode() if isinstance(previous, bytes) else str(previous or "")
        if previous == FENCED:
            return Recorded.FENCED
        return Recorded.STORED if previous else Recorded.ENDED_ELSEWHERE

    @staticmethod
    def _keys(job_id: str, batch: str) -> list[str]:
        return [
            keys.job_record(job_id),
            keys.batch_record(batch),
            keys.batch_latencies(batch),
            keys.FINISHED,
            keys.arq_in_progress(job_id),
            keys.arq_retry(job_id),
            keys.arq_job(job_id),
            keys.ARQ_ABORT,
            keys.QUEUE,
            keys.event_feed(job_id, batch)[0],
            keys.batch_results(batch),
            keys.batch_live(batch),
            keys.METRICS,
            keys.batch_first_tokens(batch),
        ]

    def _args(
        self,
        job_id: str,
        state: JobState,
        fields: dict[str, str],
        *,
        latency_ms: float | None = None,
        first_token_ms: float | None = None,
        counters: dict[str, int] | None = None,
        token: str | None = None,
        events: list[str] | None = None,
        batch: str | None = None,
        metrics: dict[str, int] | None = None,
    ) -> list[str | int | float]:
        args: list[str | int | float] = [
            state.value,
            self._ttl_s,
            "" if latency_ms is None else f"{latency_ms:.1f}",
            json.dumps(counters or {}),
            _TERMINAL_JSON,
            job_id,
            f"{time.time():.6f}",
            token or "",
            encode_entry(events) if events else "",
            keys.event_feed(job_id, batch)[1] if events else "",
            self._log_max_entries,
            self._log_ttl_s,
            self._keep,
            json.dumps(metrics or {}),
            "" if first_token_ms is None else f"{first_token_ms:.1f}",
        ]
        for name, value in fields.items():
            args += [name, value]
        return args

    async def _call_through_outage(
        self, script: AsyncScript, job_keys: list[str], args: list[str | int | float]
    ) -> Any:
        """Retry across a Redis restart or a full Redis: an answer already paid for must not be lost
        to a blip.

        The script is safe to repeat: a state it already set is not moved again.
        """
        backoff = Backoff(max_s=2.0, give_up_s=STORE_OUTAGE_S)
        while True:
            try:
                previous = await script(keys=job_keys, args=args)
            except Exception as exc:
                if not waits_out(exc):
                    raise
                notice = backoff.failed(exc)
                self._outage.failed(notice.error, retry_in_s=notice.retry_in_s)
                await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
            else:
                self._outage.recovered()
                return previous
