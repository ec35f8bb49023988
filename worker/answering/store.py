"""The worker's writes to the job record and the batch counters, each one atomic Lua call.

A state change moves one unit between the batch's per-state counters in the same call that changes
the job, so ``askq status`` reads counters that always add up. A job already in a terminal state is
never moved again: a job run twice (at-least-once delivery) is recorded once.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from string import Template
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from common import keys, record
from common.reconnect import Backoff, waits_out
from common.replay import MARK_LOG_FROM_LUA
from common.status import TERMINAL_STATES, JobState
from common.stored_jobs import COMPACT_LUA
from common.usage import Usage

# KEYS: job record, batch record, batch latencies, the finished-jobs index, then arq's: the job's
# in-progress, retry and job keys, the abort set and the queue; then the batch's results hash.
# ARGV: new state, ttl_s, latency_ms ('' if none), prompt tokens, completion tokens, terminal states
# (JSON), job id, now (unix s), field/value pairs.
# Field names come from common.record. Returns the previous state, or '' when the record is
# missing or already terminal (nothing changed).
_TRANSITION = COMPACT_LUA + Template("""
local old = redis.call('HGET', KEYS[1], '$state')
if not old then return '' end
local ends = false
for _, terminal in ipairs(cjson.decode(ARGV[6])) do
  if old == terminal then return '' end
  if ARGV[1] == terminal then ends = true end
end
local ttl = tonumber(ARGV[2])
if old ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[2], old, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
redis.call('HSET', KEYS[1], '$state', ARGV[1], unpack(ARGV, 9))
if ends then
  -- Indexed by finish time for scheduled summaries; entries older than the results go with them.
  redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[8]) - ttl)
  -- What arq's finish_job would do, a round trip later: the ended job is gone from arq's keys.
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
  redis.call('ZREM', KEYS[8], ARGV[7])
  redis.call('ZREM', KEYS[9], ARGV[7])
  -- The ended record keeps only small fields; question, answer and the like go to the results hash.
  compact(KEYS[1], KEYS[10], ARGV[7], ttl)
end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ttl)
end
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[2], '$prompt_tokens', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[2], '$completion_tokens', ARGV[5]) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return old
""").substitute(
    state=record.STATE, prompt_tokens=record.PROMPT_TOKENS, completion_tokens=record.COMPLETION_TOKENS
)
# The transition to running. The job's first start also marks where its events begin in the
# batch's log (Redis time, as entry ids are). Returns {previous state or '', the record's seq, the
# previous run's started_at}: the publisher numbers on from the seq, and when the previous state was
# running (its worker was lost), searches the log from that run's start for events past it.
_START = (
    MARK_LOG_FROM_LUA
    + f"""
local was_started = redis.call('HGET', KEYS[1], '{record.STARTED_AT}')
local function transition()
{_TRANSITION}
end
local old = transition()
if old ~= '' then mark_log_from(KEYS[1]) end
return {{old, redis.call('HGET', KEYS[1], '{record.SEQ}') or '0', was_started or ''}}
"""
)
# KEYS: job record. ARGV: seq of the run's announcement. Returns the error of a cancelled job (its
# seq counted as used), or false.
_CANCELLED = f"""
local state, error = unpack(redis.call('HMGET', KEYS[1], '{record.STATE}', '{record.ERROR}'))
if state ~= '{JobState.CANCELLED.value}' then return false end
if tonumber(redis.call('HGET', KEYS[1], '{record.SEQ}') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], '{record.SEQ}', ARGV[1])
end
return error or ''
"""
# KEYS: job record. Returns the record's finished_at, or false.
_FINISHED_AT = f"return redis.call('HGET', KEYS[1], '{record.FINISHED_AT}')"
log = structlog.get_logger(__name__)

STORE_OUTAGE_S = 60.0
"""How long a job waits out a Redis outage to record its state before giving up."""
REJECTED_MAX = 1000
"""The rejected log keeps about this many latest entries."""
_TERMINAL_JSON = json.dumps(sorted(state.value for state in TERMINAL_STATES))


@dataclass(frozen=True)
class RunStart:
    """A job now running."""

    seq: int
    """The last event number its earlier runs used (0 for a first run)."""
    lost_run_ms: int | None
    """When the job was running already (its worker was lost): that run's start, unix ms."""


@dataclass(frozen=True)
class Outcome:
    state: JobState
    attempts: int
    answer: str = ""
    error: str = ""
    error_code: str = ""
    usage: Usage | None = None
    finish_reason: str = ""
    model: str = ""
    latency_ms: float = 0.0


class JobStore:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._transition = redis.register_script(_TRANSITION)
        self._start = redis.register_script(_START)
        self._cancelled = redis.register_script(_CANCELLED)
        self._finished_at = redis.register_script(_FINISHED_AT)

    async def mark_running(self, job_id: str, batch: str) -> RunStart | None:
        """Move a queued job to running; None when it is finished already (or unknown) and must not run."""
        args = self._args(job_id, JobState.RUNNING, {record.STARTED_AT: str(time.time())})
        previous, seq, was_started = await self._call_through_outage(
            self._start, self._keys(job_id, batch), args
        )
        if not previous:
            return None
        lost = previous == JobState.RUNNING.value.encode() and was_started
        return RunStart(int(seq), int(float(was_started) * 1000) if lost else None)

    async def requeue(self, job_id: str, batch: str, *, seq: int) -> bool:
        """A running job handed back to the queue (its worker is stopping); False if it ended meanwhile.

        ``seq`` is the last event number the run uses, its announcement included.
        """
        return await self._run(job_id, batch, JobState.QUEUED, {record.SEQ: str(seq)}) != ""

    async def reject(self, arq_job_id: str, reason: str) -> None:
        """Record a job refused unrun: in the rejected log and, if it names a known job, as its result."""
        await self._redis.xadd(
            keys.REJECTED, {"arq_job_id": arq_job_id, "reason": reason}, maxlen=REJECTED_MAX, approximate=True
        )
        await self._redis.expire(keys.REJECTED, self._ttl_s)
        # Only the record the job is stored as: a payload naming another job must not fail that one.
        batch = await self._redis.hget(keys.job_record(arq_job_id), record.BATCH)  # type: ignore[misc]  # redis-py types sync and async alike
        if batch is not None:
            outcome = Outcome(state=JobState.FAILED, attempts=0, error=reason, error_code="invalid_payload")
            await self.finish(arq_job_id, batch.decode(), outcome)

    async def cancelled_reason(self, job_id: str, *, seq: int) -> str | None:
        """Why the job was cancelled, when its record says it was; None otherwise.

        When it was, the run announces it as event ``seq``, which the record then counts as used.
        """
        reason = await self._cancelled(keys=[keys.job_record(job_id)], args=[seq])
        return reason.decode() if isinstance(reason, bytes) else None

    async def finish(self, job_id: str, batch: str, outcome: Outcome, *, seq: int | None = None) -> bool:
        """Record the one result of a job, and remove it from arq's keys and queue; False when another
        run recorded it first.

        ``seq`` is the last event number the run uses, its end event included.
        """
        usage = outcome.usage or Usage()
        fields = {
            record.ANSWER: outcome.answer,
            record.ERROR: outcome.error,
            record.ERROR_CODE: outcome.error_code,
            record.ATTEMPTS: str(outcome.attempts),
            record.USAGE: usage.model_dump_json(),
            record.FINISH_REASON: outcome.finish_reason,
            record.MODEL: outcome.model,
            record.LATENCY_MS: f"{outcome.latency_ms:.1f}",
            record.FINISHED_AT: str(time.time()),
        }
        if seq is not None:
            fields[record.SEQ] = str(seq)
        previous = await self._run(
            job_id, batch, outcome.state, fields, latency_ms=outcome.latency_ms, usage=usage
        )
        if previous != "":
            return True
        # The job was ended already, maybe by this very call: a reset can lose the reply of a script
        # that ran, and the retry then finds the job ended. Its finished_at tells whose end it is.
        ended_at = await self._call_through_outage(self._finished_at, [keys.job_record(job_id)], [])
        return isinstance(ended_at, bytes) and ended_at.decode() == fields[record.FINISHED_AT]

    async def _run(
        self,
        job_id: str,
        batch: str,
        state: JobState,
        fields: dict[str, str],
        *,
        latency_ms: float | None = None,
        usage: Usage | None = None,
    ) -> str:
        args = self._args(job_id, state, fields, latency_ms=latency_ms, usage=usage)
        previous = await self._call_through_outage(self._transition, self._keys(job_id, batch), args)
        return previous.decode() if isinstance(previous, bytes) else str(previous or "")

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
            keys.batch_results(batch),
        ]

    def _args(
        self,
        job_id: str,
        state: JobState,
        fields: dict[str, str],
        *,
        latency_ms: float | None = None,
        usage: Usage | None = None,
    ) -> list[str | int | float]:
        usage = usage or Usage()
        args: list[str | int | float] = [
            state.value,
            self._ttl_s,
            "" if latency_ms is None else f"{latency_ms:.1f}",
            usage.prompt_tokens,
            usage.completion_tokens,
            _TERMINAL_JSON,
            job_id,
            f"{time.time():.6f}",
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
        failures = 0
        while True:
            try:
                previous = await script(keys=job_keys, args=args)
            except Exception as exc:
                if not waits_out(exc):
                    raise
                notice = backoff.failed(exc)
                log.warning(
                    "redis unavailable; retrying the job record",
                    error=notice.error,
                    retry_in_s=notice.retry_in_s,
                )
                failures += 1
                await asyncio.sleep(notice.retry_in_s)  # backoff while Redis is away
            else:
                if failures:
                    log.info("redis reachable again", failed_tries=failures)
                return previous
