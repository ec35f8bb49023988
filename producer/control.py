"""``askq cancel``, and the Lua that ``askq cancel`` and ``askq retry`` share to log a job's event.

Each chunk is one Lua call that re-reads every job's state before touching it, so a job that a
worker finished or started a moment ago is never moved by a stale decision. Counters move in the
same call, as everywhere else. A job that is not running gets its ``retry`` or ``cancelled`` event
written here, numbered after its record's ``seq``; a running job's worker writes its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from string import Template

from redis.asyncio import Redis

from common import keys, metrics, record
from common.config import AskqConfig
from common.events import EVENT_SCHEMA_VERSION
from common.live_log import LIVE_LUA, keep_flag
from common.replay import MARK_LOG_FROM_LUA
from common.status import JobState
from common.stored_jobs import COMPACT_LUA
from producer.arq_jobs import wake_workers
from producer.batches import job_id_pages

CANCELLED = "cancelled on request (askq cancel, the API or the console)"

# Numbers one event after the job's record's seq (or ``floor``, the last seq a lost run logged, when
# higher) and gathers it; `send_events` writes what was
# gathered as one entry of the batch's log (KEYS[3]) and publishes it on the batch's channel,
# returning the entry's id ('' when nothing was gathered).
LOG_EVENT_LUA = MARK_LOG_FROM_LUA + Template("""
local events = {}
local function log_event(rec, job_id, kind, attempt, reason, floor)
  local seq = math.max(tonumber(redis.call('HGET', rec, '$seq') or '0'), tonumber(floor or '0')) + 1
  redis.call('HSET', rec, '$seq', seq)
  mark_log_from(rec)
  table.insert(events, {v = $version, type = kind, job_id = job_id, seq = seq, attempt = attempt,
    ts = tonumber(ARGV[2]), error = reason})
end
local function send_events(channel)
  if #events == 0 then return '' end
  local data = cjson.encode(events)
  local written = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', '$field', data)
  redis.call('EXPIRE', KEYS[3], ARGV[1])
  redis.call('PUBLISH', channel, data)
  return written
end
local function move(batch, rec, old, new)
  redis.call('HINCRBY', batch, old, -1)
  redis.call('HINCRBY', batch, new, 1)
  redis.call('HSET', rec, '$state', new)
end
""").substitute(
    version=EVENT_SCHEMA_VERSION,
    field=keys.LOG_FIELD,
    state=record.STATE,
    seq=record.SEQ,
)

# KEYS: batch record, queue, batch log, abort set, batch results, batch live set, the cluster-wide
# metrics hash, then (job record, arq job) per job.
# ARGV: ttl_s, now_s, now_ms, log maxlen, batch channel, reason, keep ended events ('1' or '0'),
# then job id per job.
# Returns {queued jobs cancelled, ids of the running jobs asked to abort}.
_CANCEL = (
    LOG_EVENT_LUA
    + LIVE_LUA
    + COMPACT_LUA
    + Template("""
local queued, aborted, ended = 0, {}, {}
for i = 0, (#KEYS - 7) / 2 - 1 do
  local rec, job = KEYS[8 + 2 * i], KEYS[9 + 2 * i]
  local job_id = ARGV[8 + i]
  local old = redis.call('HGET', rec, '$state')
  if old == '$queued' or old == '$running' then
    move(KEYS[1], rec, old, '$cancelled')
    -- Its end, counted here, where it ends: the worker's transition finds it ended and counts nothing.
    redis.call('HINCRBY', KEYS[7], '$cancelled_field', 1)
    redis.call('HSET', rec, '$error', ARGV[6], '$error_code', '$cancelled', '$finished_at', ARGV[2])
    if old == '$queued' then
      redis.call('ZREM', KEYS[2], job_id)
      redis.call('DEL', job)
      log_event(rec, job_id, '$cancelled', 0, ARGV[6])
      -- Ended for good. (A running job's record stays whole: its worker reads the reason there.)
      compact(rec, KEYS[5], job_id, ARGV[1])
      ended[#ended + 1] = rec
      -- (A job queued again by `askq retry` was live: its events are no longer needed.)
      redis.call('ZREM', KEYS[6], job_id)
      queued = queued + 1
    else
      -- Its worker cancels the task on its next poll (arq's abort) and writes the event.
      redis.call('ZADD', KEYS[4], ARGV[3], job_id)
      redis.call('HSET', rec, '$stopping', '1')
      aborted[#aborted + 1] = job_id
    end
  end
end
local written = send_events(ARGV[5])
if queued > 0 then trim_log(KEYS[6], KEYS[3], ARGV[7], written, KEYS[1]) end
-- Where their ends are in the log, for readers resuming after a place in it.
for _, rec in ipairs(ended) do redis.call('HSET', rec, '$end_entry', written) end
return {queued, aborted}
""").substitute(
        state=record.STATE,
        error=record.ERROR,
        error_code=record.ERROR_CODE,
        finished_at=record.FINISHED_AT,
        queued=JobState.QUEUED.value,
        running=JobState.RUNNING.value,
        cancelled=JobState.CANCELLED.value,
        stopping=record.STOPPING,
        end_entry=record.END_ENTRY,
        cancelled_field=metrics.job_ended(JobState.CANCELLED.value),
    )
)


@dataclass(frozen=True)
class CancelReport:
    batch: str
    queued: int
    aborted: list[str]
    """The running jobs whose workers were asked to abort them."""

    @property
    def running(self) -> int:
        return len(self.aborted)

    def to_json(self) -> dict[str, object]:
        return {"batch": self.batch, "queued_cancelled": self.queued, "running_aborting": self.running}


async def cancel_batch(
    redis: Redis, batch: str, config: AskqConfig, *, on_progress: Callable[[int], None] | None = None
) -> CancelReport:
    """Cancel the batch's queued jobs and ask workers to abort its running ones; ``on_progress(jobs
    looked at)`` after each page."""
    script = redis.register_script(_CANCEL)
    queued = seen = 0
    aborted: list[str] = []
    async for job_ids in job_id_pages(redis, batch):
        now = time.time()
        call_keys = [
            keys.batch_record(batch),
            keys.QUEUE,
            keys.batch_log(batch),
            keys.ARQ_ABORT,
            keys.batch_results(batch),
            keys.batch_live(batch),
            keys.METRICS,
        ]
        args: list[str | int | float] = [
            config.retention.ttl_s,
            f"{now:.3f}",
            int(now * 1000),
            config.stream.log_max_entries,
            keys.batch_events_channel(batch),
            CANCELLED,
            keep_flag(config.stream.keep_ended_events),
        ]
        for job_id in job_ids:
            call_keys += [keys.job_record(job_id), keys.arq_job(job_id)]
            args += [job_id]
        cancelled_queued, aborted_now = await script(keys=call_keys, args=args)
        queued += int(cancelled_queued)
        aborted += [job_id.decode() for job_id in aborted_now]
        seen += len(job_ids)
        if on_progress is not None:
            on_progress(seen)
    if aborted:
        await wake_workers(redis)  # a worker reads the abort set when it polls
    return CancelReport(batch, queued, aborted)
