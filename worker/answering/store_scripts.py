"""The Lua of the job store's record writes: each a state change, its counters and its events at once."""

from __future__ import annotations

from string import Template

from common import keys, record
from common.events import EVENT_SCHEMA_VERSION
from common.live_log import LIVE_LUA
from common.replay import MARK_LOG_FROM_LUA
from common.status import JobState
from common.stored_jobs import COMPACT_LUA

FENCED = "fenced"
"""What a transition returns when another worker's run owns the job."""

# KEYS: job record, batch record, batch latencies, the finished-jobs index, then arq's: the job's
# in-progress, retry and job keys, the abort set and the queue; then the job's event log, the
# batch's results hash and its live set; then the cluster-wide metrics hash; then the batch's times
# to first token.
# ARGV: new state, ttl_s, latency_ms ('' if none), batch counter increments (JSON), terminal states
# (JSON), job id, now (unix s), the run's lease token ('' when unfenced), events to log (an entry,
# '' if none), the log's channel, log maxlen, log ttl_s, keep ended events ('1' or '0'), metrics
# increments when the job ends here (JSON: common.metrics fields), time to first token (ms, '' if
# none), then field/value pairs.
# Field names come from common.record. Returns the previous state, '' when the record is missing or
# already terminal (nothing changed), or 'fenced' when another worker's run owns the job now.
TRANSITION = (
    COMPACT_LUA
    + LIVE_LUA
    + Template("""
local old = redis.call('HGET', KEYS[1], '$state')
if not old then return '' end
local fence = ARGV[8]
if fence ~= '' and ARGV[1] ~= '$running' then
  -- Ending or handing back a run is its owner's: a worker that lost the lease has a copy, not the run.
  -- A run's record is `running` while it runs: `queued` means a retry (or a hand-back) moved on.
  local owner, holder = redis.call('HGET', KEYS[1], '$owner'), redis.call('GET', KEYS[5])
  if (owner and owner ~= fence) or (holder and holder ~= fence) or old == '$queued' then
    return '$fenced'
  end
end
local ends = false
for _, terminal in ipairs(cjson.decode(ARGV[5])) do
  if old == terminal then return '' end
  if ARGV[1] == terminal then ends = true end
end
local ttl = tonumber(ARGV[2])
if old ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[2], old, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
redis.call('HSET', KEYS[1], '$state', ARGV[1], unpack(ARGV, 16))
if ends then
  -- Indexed by finish time for scheduled summaries; entries older than the results go with them.
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[7]) - ttl)
  -- What arq's finish_job would do, a round trip later: the ended job is gone from arq's keys.
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
  redis.call('ZREM', KEYS[8], ARGV[6])
  redis.call('ZREM', KEYS[9], ARGV[6])
  -- The ended record keeps only small fields; question, answer and the like go to the results hash.
  compact(KEYS[1], KEYS[11], ARGV[6], ttl)
end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ttl)
end
if ARGV[15] ~= '' then
  redis.call('RPUSH', KEYS[14], ARGV[15])
  redis.call('EXPIRE', KEYS[14], ttl)
end
for name, count in pairs(cjson.decode(ARGV[4])) do
  if count > 0 then redis.call('HINCRBY', KEYS[2], name, count) end
end
if ends then
  -- Cluster-wide, in the call that ends the job: counted once, as the job's end is.
  for name, count in pairs(cjson.decode(ARGV[14])) do
    if count > 0 then redis.call('HINCRBY', KEYS[13], name, count) end
  end
end
local written = ''
if ARGV[9] ~= '' then
  -- The run's last events and its end, in the same call as the state readers check: never apart.
  written = redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[11], '*', '$log_field', ARGV[9])
  redis.call('EXPIRE', KEYS[10], ARGV[12])
  redis.call('PUBLISH', ARGV[10], ARGV[9])
end
if ends then
  -- Ended for good: its events are no longer needed (its result holds the answer).
  redis.call('ZREM', KEYS[12], ARGV[6])
  trim_log(KEYS[12], KEYS[10], ARGV[13], written, KEYS[2])
  -- Where its end is in the log ('': not logged here), for readers resuming after a place in it.
  if written ~= '' then redis.call('HSET', KEYS[1], '$end_entry', written) end
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return old
""").substitute(
        state=record.STATE,
        owner=record.OWNER,
        running=JobState.RUNNING.value,
        queued=JobState.QUEUED.value,
        fenced=FENCED,
        log_field=keys.LOG_FIELD,
        end_entry=record.END_ENTRY,
    )
)
# The transition to running, refused when the job's in-progress key holds another worker's lease
# token (it claimed the job since; a claim that merely expired, Redis stalled or full, is taken back
# by the lease renewal). The job's first start also marks where its events begin in
# the batch's log (Redis time, as entry ids are), and makes it live from then (a requeued or lost
# run's job is live already: its earlier events stay). Returns {previous state or '', the record's seq, the
# previous run's started_at, lost runs' attempts and output tokens so far, 1 if refused}: the
# publisher numbers on from the seq, and when the previous state was running (its worker was lost),
# searches the log from that run's start for events past it.
START = (
    MARK_LOG_FROM_LUA
    + LIVE_LUA
    + f"""
local holder = redis.call('GET', KEYS[5])
if ARGV[8] ~= '' and holder and holder ~= ARGV[8] then return {{'', '0', '', '0', '0', 1}} end
local was_started = redis.call('HGET', KEYS[1], '{record.STARTED_AT}')
local function transition()
{TRANSITION}
end
local old = transition()
if old ~= '' then
  mark_log_from(KEYS[1])
  mark_live(KEYS[12], ARGV[6], ARGV[2])
end
local lost = redis.call('HMGET', KEYS[1], '{record.LOST_ATTEMPTS}', '{record.LOST_OUTPUT_TOKENS_EST}')
return {{old, redis.call('HGET', KEYS[1], '{record.SEQ}') or '0', was_started or '', lost[1] or '0',
  lost[2] or '0', 0}}
"""
)
# KEYS: job record, the job's event log, the batch's live set and record, the cluster-wide metrics
# hash. ARGV: seq and attempt of the run's announcement, now (unix s), the run's events not yet sent
# (an entry: a JSON array), the log's channel, log maxlen, log ttl_s, job id, keep ended events ('1'
# or '0'), the run's metrics increments (JSON: its attempts and usage, when it ran to its end). When
# the record says cancelled: logs those events and the ``cancelled`` event (its seq counted as used),
# marks the run stopped, ends the job's stay in the live log, and returns the reason; otherwise false.
CANCELLED = LIVE_LUA + Template("""
local state, error = unpack(redis.call('HMGET', KEYS[1], '$state', '$error'))
if state ~= '$cancelled' then return false end
if tonumber(redis.call('HGET', KEYS[1], '$seq') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], '$seq', ARGV[1])
end
if redis.call('HDEL', KEYS[1], '$stopping') == 1 then
  -- The run's first acknowledgement (`askq cancel` marked it stopping): what it spent counts once.
  -- (The job's end was counted by `askq cancel`.)
  for name, count in pairs(cjson.decode(ARGV[10])) do
    if count > 0 then redis.call('HINCRBY', KEYS[5], name, count) end
  end
end
local event = cjson.encode({v = $version, type = '$cancelled', job_id = ARGV[8], seq = tonumber(ARGV[1]),
  attempt = tonumber(ARGV[2]), ts = tonumber(ARGV[3]), error = error or ''})
local entry = '[' .. event .. ']'
if ARGV[4] ~= '[]' then entry = string.sub(ARGV[4], 1, -2) .. ',' .. event .. ']' end
local written = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', '$log_field', entry)
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[5], entry)
redis.call('ZREM', KEYS[3], ARGV[8])
trim_log(KEYS[3], KEYS[2], ARGV[9], written, KEYS[4])
redis.call('HSET', KEYS[1], '$end_entry', written)
return error or ''
""").substitute(
    state=record.STATE,
    error=record.ERROR,
    seq=record.SEQ,
    stopping=record.STOPPING,
    cancelled=JobState.CANCELLED.value,
    version=EVENT_SCHEMA_VERSION,
    log_field=keys.LOG_FIELD,
    end_entry=record.END_ENTRY,
)
# KEYS: job record, the cluster-wide metrics hash. ARGV: its owner's token ('' unfenced), attempts and
# output tokens (estimated) of a run found lost or handed back (its worker stopping, or `askq cancel`),
# the metrics field of such attempts. Counted once, by the run that found it (or the run itself),
# while it still owns the record. The cluster's attempts count here, where the run's end is known:
# a cancelled job's run has no later end to count them, and a job's finish leaves them to this call.
COUNT_LOST = f"""
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], '{record.OWNER}') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], '{record.LOST_ATTEMPTS}', ARGV[2])
redis.call('HINCRBY', KEYS[1], '{record.LOST_OUTPUT_TOKENS_EST}', ARGV[3])
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', KEYS[2], ARGV[4], ARGV[2]) end
return 1
"""
# KEYS: job record. Returns the record's finished_at, or false.
FINISHED_AT = f"return redis.call('HGET', KEYS[1], '{record.FINISHED_AT}')"
