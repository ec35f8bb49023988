"""The Lua of the provider gate (``worker.answering.gate``): each admission, outage and cooldown is
one call."""

from __future__ import annotations

# KEYS: halt, cooldown, pace, outage, in-flight limit, in-flight calls, providers.
# ARGV: ms between requests (0: no pace), call id, ms a place is held, endpoint, ms the providers
# set is kept (a paced endpoint is listed there, for `askq status`).
# Returns {halt reason or false, cooldown ms, ms until this attempt's reserved send time,
#          outage since ms, its age ms, its error, in-flight limit, place ('1' taken, '0' none free),
#          places in use}; trailing fields absent when they do not apply.
ADMIT = """
local reason = redis.call('GET', KEYS[1])
if reason then return {reason, '0', '0'} end
local cooldown_ms = redis.call('PTTL', KEYS[2])
if cooldown_ms > 0 then return {false, tostring(cooldown_ms), '0'} end
local outage = redis.call('HMGET', KEYS[4], 'since_ms', 'error')
local limit = redis.call('HGET', KEYS[5], 'limit')
local interval = tonumber(ARGV[1])
if not outage[1] and not limit and interval <= 0 then return {false, '0', '0'} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if outage[1] then
  return {false, '0', '0', outage[1], tostring(now - tonumber(outage[1])), outage[2] or ''}
end
local place, used = '', 0
if limit then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  used = redis.call('ZCARD', KEYS[6])
  if used >= tonumber(limit) then return {false, '0', '0', '', '', '', limit, '0', tostring(used)} end
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
  used = used + 1
  place = '1'
end
local send_in = 0
if interval > 0 then
  local send_at = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
  redis.call('SET', KEYS[3], tostring(send_at + interval), 'PX', math.ceil(send_at + interval - now) + 1000)
  send_in = send_at - now
  redis.call('SADD', KEYS[7], ARGV[4])
  redis.call('PEXPIRE', KEYS[7], ARGV[5])
end
return {false, '0', tostring(send_in), '', '', '', limit or '', place, tostring(used)}
"""

# KEYS: outage, providers. ARGV: error, ms it is held, endpoint, ms the providers set is kept.
# Returns {since ms, age ms, '1' if this call began it}.
UNREACHABLE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local since = redis.call('HGET', KEYS[1], 'since_ms')
local began = '0'
if not since then
  since = tostring(now)
  began = '1'
end
redis.call('HSET', KEYS[1], 'since_ms', since, 'error', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {since, tostring(now - tonumber(since)), began}
"""

# KEYS: outage. Returns how long the outage lasted (ms), or false if there was none.
REACHABLE = """
local since = redis.call('HGET', KEYS[1], 'since_ms')
if not since then return false end
redis.call('DEL', KEYS[1])
local time = redis.call('TIME')
return tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(since))
"""

# KEYS: cooldown, providers. ARGV: ms, endpoint, ms the providers set is kept. Lengthens the
# cooldown, never shortens it; the endpoint is listed for `askq status`.
COOL_DOWN = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
"""
