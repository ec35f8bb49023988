"""The Lua of the token pace and of the limits learned from headers (``worker.answering.pacing``): a
call's settle, and what its response's headers taught, are one call each."""

from __future__ import annotations

# KEYS: token pace. ARGV: tokens given back (signed: negative takes more, for an estimate that was
# low), ms per token they were reserved at, ms the provider's own token pace is booked ahead (-1:
# unknown). Gives back, never below now (an idle pace has nothing to give back from); takes more from
# max(pace, now); then never behind the provider's pace (another client on its key, a limit lowered).
# Returns how far ahead of now the pace is booked (ms).
SETTLE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local given = tonumber(ARGV[1]) * tonumber(ARGV[2])
if given >= 0 then
  tat = math.max(tat - given, now)
else
  tat = math.max(tat, now) - given
end
local ahead = tonumber(ARGV[3])
if ahead >= 0 then tat = math.max(tat, now + ahead) end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return tostring(tat - now)
"""

# KEYS: rate limits, providers, probe. ARGV: 1 requests per minute ('' none), 2 tokens per minute
# ('' none), 3 token burst ms ('' none), 4 '1' when the provider sent no rate-limit headers, 5
# endpoint, 6 ms the providers set is kept, 7 the probe's call id ('' not the probe), 8 ms the rate
# limits hash is kept. Writes what a response's headers said (or that it had none), frees the probe.
# Returns '1' when the limits changed (or were learned), else '0'.
LEARN = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local old = redis.call('HMGET', KEYS[1], 'requests', 'tokens', 'none')
local changed
if ARGV[4] == '1' then
  changed = old[3] ~= '1'
  redis.call('HDEL', KEYS[1], 'requests', 'tokens', 'tokens_burst_ms')
  redis.call('HSET', KEYS[1], 'none', '1', 'seen_ms', now)
else
  changed = (old[1] or '') ~= ARGV[1] or (old[2] or '') ~= ARGV[2] or old[3] == '1'
  redis.call('HDEL', KEYS[1], 'none')
  redis.call('HSET', KEYS[1], 'seen_ms', now)
  for index, field in ipairs({'requests', 'tokens', 'tokens_burst_ms'}) do
    if ARGV[index] == '' then
      redis.call('HDEL', KEYS[1], field)
    else
      redis.call('HSET', KEYS[1], field, ARGV[index])
    end
  end
end
if changed then redis.call('HSET', KEYS[1], 'since_ms', now) end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[7] ~= '' and redis.call('GET', KEYS[3]) == ARGV[7] then redis.call('DEL', KEYS[3]) end
if changed then return '1' end
return '0'
"""

# KEYS: probe. ARGV: call id. A probe that learned nothing (cut before any answer) lets another go.
FREE_PROBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""
