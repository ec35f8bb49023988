"""``askq retry``: put a batch's failed (and, if asked, cancelled) jobs back in the queue.

Each chunk is one Lua call that re-reads every job's state before touching it, and writes each
job's ``retry`` event numbered after the last one its runs used.

A job cancelled while it ran is retried only once that run has stopped: until its worker says so
(``record.STOPPING`` cleared), the run may have logged events past the record's ``seq``, and may
still store its result or hand the job back. So ``retry_batch`` waits for those runs, a poll at a
time: a live worker answers the cancel within one poll; a dead worker's lease ends within
``limits.lease_s``, after which the retry numbers on from the last event that run logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from string import Template

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from common import keys, record
from common.config import AskqConfig
from common.events import EventType
from common.live_log import LIVE_LUA
from common.replay import last_event_in_log
from common.status import JobState
from common.stored_jobs import RESTORE_LUA, read_jobs
from producer.arq_jobs import arq_job, payload_from_record, wake_workers
from producer.batches import job_id_pages
from producer.control import LOG_EVENT_LUA

RETRIED = "re-run by `askq retry`; its earlier result is discarded"
STOPPING_POLL_S = 0.05
"""How often a retry looks again at cancelled runs that have not stopped yet."""

# KEYS: batch record, queue, batch log, batch halt, arq's abort set, batch results, batch live set,
# then (job record, arq job, arq retry count, arq in-progress) per job.
# ARGV: ttl_s, now_s, score_ms, log maxlen, batch channel, states JSON, reason,
#       then (job id, arq job, the last seq its stopped run logged or '0') per job.
# Returns {jobs queued again, ids of cancelled jobs whose run has not stopped yet}.
_RETRY = (
    LOG_EVENT_LUA
    + LIVE_LUA
    + RESTORE_LUA
    + Template("""
local from = {}
for _, state in ipairs(cjson.decode(ARGV[6])) do from[state] = true end
local moved, stopping = 0, {}
-- A retry is the user saying the cause is fixed: lift a halt left by a refused API key.
redis.call('DEL', KEYS[4])
for i = 0, (#KEYS - 7) / 4 - 1 do
  local rec, job, tries, claim = KEYS[8 + 4 * i], KEYS[9 + 4 * i], KEYS[10 + 4 * i], KEYS[11 + 4 * i]
  local job_id = ARGV[8 + 3 * i]
  local old = redis.call('HGET', rec, '$state')
  if old == '$cancelled' and redis.call('HEXISTS', rec, '$stopping') == 1
      and redis.call('EXISTS', claim) == 1 then
    -- Its run was asked to stop and has not said it did, and its worker still holds the job.
    stopping[#stopping + 1] = job_id
  elseif old and from[old] then
    local attempts = tonumber(redis.call('HGET', rec, '$attempts') or '0') or 0
    move(KEYS[1], rec, old, '$queued')
    -- Live again: its record whole, as a queued job's is; the earlier result is then cleared.
    restore(rec, KEYS[6], job_id)
    redis.call('HDEL', rec, $cleared)
    redis.call('EXPIRE', rec, ARGV[1])
    redis.call('DEL', tries)
    -- A cancel asked workers to abort it: the new run must not be taken for the old one.
    redis.call('ZREM', KEYS[5], job_id)
    redis.call('SET', job, ARGV[9 + 3 * i], 'PX', ARGV[1] * 1000)
    redis.call('ZADD', KEYS[2], ARGV[3] + i * 0.001, job_id)
    -- Live again from its retry event on (from earlier if its stopped run's events are still needed).
    mark_live(KEYS[7], job_id, ARGV[1])
    log_event(rec, job_id, '$retry', attempts, ARGV[7], ARGV[10 + 3 * i])
    moved = moved + 1
  end
end
send_events(ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {moved, stopping}
""").substitute(
        state=record.STATE,
        attempts=record.ATTEMPTS,
        queued=JobState.QUEUED.value,
        retry=EventType.RETRY.value,
        cancelled=JobState.CANCELLED.value,
        stopping=record.STOPPING,
        cleared=", ".join(
            f"'{name}'"
            for name in (
                record.ANSWER,
                record.ERROR,
                record.ERROR_CODE,
                record.ATTEMPTS,
                record.FINISH_REASON,
                record.SOURCES,
                record.STARTED_AT,
                record.FINISHED_AT,
                record.LATENCY_MS,
                record.FIRST_TOKEN_MS,
                record.RETRIED,
                record.STOPPING,
                record.END_ENTRY,
                record.OWNER,
                # What earlier runs spent is in the batch's counters already; the new runs count anew.
                record.LOST_ATTEMPTS,
                record.LOST_OUTPUT_TOKENS_EST,
                record.LOST_USAGE_EST,
            )
        ),
    )
)


async def retry_batch(
    redis: Redis, batch: str, config: AskqConfig, *, include_cancelled: bool = False
) -> int:
    """Put the batch's failed jobs (and cancelled ones, if asked) back in the queue; returns how many.

    Cancelled runs that have not stopped yet are waited for, up to a lease and a second; a run
    still holding its job after that (its worker stuck) stays cancelled, not counted.
    """
    states = [JobState.FAILED.value] + ([JobState.CANCELLED.value] if include_cancelled else [])
    script = redis.register_script(_RETRY)
    moved = 0
    stopping: list[str] = []
    async for job_ids in job_id_pages(redis, batch):
        queued, still = await _retry_chunk(redis, script, batch, config, job_ids, states)
        moved, stopping = moved + queued, stopping + still
    deadline = time.monotonic() + config.limits.lease_s + 1
    while stopping and time.monotonic() < deadline:
        await asyncio.sleep(STOPPING_POLL_S)  # a poll of runs told to stop, bounded by the deadline
        waiting, stopping = stopping, []
        for start in range(0, len(waiting), 500):
            queued, still = await _retry_chunk(
                redis, script, batch, config, waiting[start : start + 500], states
            )
            moved, stopping = moved + queued, stopping + still
    if moved:
        await wake_workers(redis)
    return moved


async def _retry_chunk(
    redis: Redis, script: AsyncScript, batch: str, config: AskqConfig, job_ids: list[str], states: list[str]
) -> tuple[int, list[str]]:
    chosen = await _records(redis, job_ids, states)
    if not chosen:
        return 0, []
    now = time.time()
    call_keys = [
        keys.batch_record(batch),
        keys.QUEUE,
        keys.batch_log(batch),
        keys.batch_halt(batch),
        keys.ARQ_ABORT,
        keys.batch_results(batch),
        keys.batch_live(batch),
    ]
    args: list[str | int | float | bytes] = [
        config.retention.ttl_s,
        f"{now:.3f}",
        f"{now * 1000:.3f}",
        config.stream.log_max_entries,
        keys.batch_events_channel(batch),
        json.dumps(states),
        RETRIED,
    ]
    for job_id, fields in chosen:
        call_keys += [
            keys.job_record(job_id),
            keys.arq_job(job_id),
            keys.arq_retry(job_id),
            keys.arq_in_progress(job_id),
        ]
        payload = payload_from_record(job_id, fields).model_dump(mode="json")
        args += [job_id, arq_job(payload, int(now * 1000)), await _stopped_run_seq(redis, job_id, fields)]
    queued, still = await script(keys=call_keys, args=args)
    return int(queued), [job_id.decode() for job_id in still]


async def _stopped_run_seq(redis: Redis, job_id: str, fields: dict[str, str]) -> int:
    """The last seq logged by a cancelled run that never said it stopped (its worker died): the retry
    numbers after it. 0 for any other job, whose record's seq is up to date."""
    if fields.get(record.STATE) != JobState.CANCELLED.value or record.STOPPING not in fields:
        return 0
    started_at_s = float(fields.get(record.STARTED_AT) or 0)
    log_key, _ = keys.event_feed(job_id, fields.get(record.BATCH))
    last = await last_event_in_log(redis, log_key, job_id, since_ms=int(started_at_s * 1000))
    return last.seq if last is not None else 0


async def _records(redis: Redis, job_ids: list[str], states: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The jobs in one of ``states``, with what their payloads are rebuilt from.

    States first, then the chosen jobs in full: never the (possibly long) answers of the others.
    """
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job_record(job_id), record.STATE)
        replies = await pipe.execute()
    chosen = [
        job_id for job_id, state in zip(job_ids, replies, strict=True) if state and state.decode() in states
    ]
    return list(zip(chosen, await read_jobs(redis, chosen), strict=True))
