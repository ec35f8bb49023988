"""The live window of a batch's event log: only the events that a job still live may need.

A job is live from its first start (or from ``askq retry`` queueing it again) until it ends for
good; its batch's live set (``keys.batch_live``) maps it to the Redis time (ms) of the first of its
events that may still be read: a handed-back or lost run's events, which the next run and the
lost-run search read, stay with it. Every call that ends a job takes it out of the set and, in the
same Lua call, trims the batch's log below the lowest time left (``XTRIM MINID``, Redis >= 6.2),
or, with no job live, below the entry that call wrote: an ended job's events leave the log, whose
stored result holds its answer, and a live job's never do. The batch's record keeps the floor of the
last trim that dropped entries (``record.LOG_TRIMMED_TO``): the log holds every entry from there on,
and while it is absent, every entry since the batch began. ``stream.keep_ended_events`` turns the
trim off (the full history for the retention).

Trimming is approximate (``~``): Redis drops whole nodes of the stream (at most 100 entries or
4 KB), so a few entries older than the floor may stay until a later end.
"""

from __future__ import annotations

from common import record

LIVE_LUA = """
-- KEYS and ARGV are the caller's; these functions take the keys they touch as arguments.
-- A job whose events may be needed from now on: listed in the batch's live set `live` at Redis's
-- time now (ms, as stream ids are), unless already listed from an earlier time. It expires with
-- the batch, `ttl` s from now.
local function mark_live(live, job_id, ttl)
  local now = redis.call('TIME')
  redis.call('ZADD', live, 'NX', now[1] * 1000 + math.floor(now[2] / 1000), job_id)
  redis.call('EXPIRE', live, ttl)
end
-- After jobs ended (and left `live`): unless `keep` is '1', the log `log` drops the entries older
-- than the first event a live job may need, or with none live, older than `newest` (the entry the
-- caller wrote, kept for the readers following the log; '' when it wrote none: the log's newest).
-- When entries went, the batch record `batch` notes the floor: readers know what the log still holds.
local function trim_log(live, log, keep, newest, batch)
  if keep == '1' then return end
  local floor = redis.call('ZRANGE', live, 0, 0, 'WITHSCORES')[2]
  if not floor then
    floor = newest
    if not floor or floor == '' then
      local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
      if not last then return end
      floor = last[1]
    end
  end
  if redis.call('XTRIM', log, 'MINID', '~', floor) > 0 and redis.call('EXISTS', batch) == 1 then
    redis.call('HSET', batch, '{trimmed_to}', floor)
  end
end
""".replace("{trimmed_to}", record.LOG_TRIMMED_TO)
"""Lua for the writers that start and end jobs (worker store, ``askq retry``, ``askq cancel``)."""


def keep_flag(keep_ended_events: bool) -> str:
    """``trim_log``'s ``keep`` argument."""
    return "1" if keep_ended_events else "0"
