"""The Lua of the provider gate (``worker.answering.gate``): each admission, outage and cooldown is
one call."""

from __future__ import annotations

# KEYS: halt, cooldown, pace, outage, in-flight limit, in-flight calls, providers, token pace, rate
#       limits, probe.
# ARGV: 1 ms between requests configured (0: none), 2 call id, 3 ms a place is held, 4 endpoint,
#       5 ms the providers set is kept (a paced endpoint is listed there, for `askq status`),
#       6 tokens this call reserves (0: a call that reserves none, as an embeddings call: paced by
#       requests_per_minute only, learning nothing), 7 ms per token configured (0: none), 8 token
#       burst ms configured, 9 what to pace from the provider's headers ('', 'r', 't' or 'rt'),
#       10 margin under a learned limit, 11 share of a learned token burst used, 12 ms a probe is
#       held, 13 ms the rate limits hash is kept, 14 '1' for a chat call (whose paces status shows;
#       an embeddings call's would say it takes no tokens). A call with no tokens to reserve and
#       no request pace sends the first 5 and the first 7 keys: the rest would not be read.
# Returns {halt reason or false, cooldown ms, ms until this attempt's reserved send time,
#          outage since ms, its age ms, its error, in-flight limit, place ('1' taken, '0' none free),
#          places in use, tokens reserved, ms per token they were reserved at, probe ('1': this call
#          learns the provider's limits; 'wait': another does), '1' when a pace is in force};
#          trailing fields absent when they do not apply.
ADMIT = """
local reason = redis.call('GET', KEYS[1])
if reason then return {reason, '0', '0'} end
local cooldown_ms = redis.call('PTTL', KEYS[2])
if cooldown_ms > 0 then return {false, tostring(cooldown_ms), '0'} end
local outage = redis.call('HMGET', KEYS[4], 'since_ms', 'error')
local limit = redis.call('HGET', KEYS[5], 'limit')
local tokens = tonumber(ARGV[6] or '0')
local interval, per_token, burst = tonumber(ARGV[1]), tonumber(ARGV[7] or '0'), tonumber(ARGV[8] or '0')
local learn = ARGV[9] or ''
if tokens <= 0 then per_token, learn = 0, '' end
local by_r = interval > 0 and 'jobs.yaml' or '-'
local by_t = per_token > 0 and 'jobs.yaml' or '-'
local probe, rates = '', {}
if learn ~= '' then
  rates = redis.call('HMGET', KEYS[9], 'requests', 'tokens', 'tokens_burst_ms', 'none', 'paced')
  if not rates[1] and not rates[2] and not rates[4] then
    probe = 'learn'
  else
    local margin = tonumber(ARGV[10])
    if rates[1] and string.find(learn, 'r', 1, true) then
      interval, by_r = 60000 / (margin * tonumber(rates[1])), 'headers'
    end
    if rates[2] and string.find(learn, 't', 1, true) then
      per_token, by_t = 60000 / (margin * tonumber(rates[2])), 'headers'
      burst = tonumber(ARGV[11]) * tonumber(rates[3] or '0')
    end
  end
end
if not outage[1] and not limit and interval <= 0 and per_token <= 0 and probe == '' then
  return {false, '0', '0'}
end
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
end
if probe ~= '' then
  if not redis.call('SET', KEYS[10], ARGV[2], 'NX', 'PX', ARGV[12]) then
    return {false, '0', '0', '', '', '', '', '', '0', '0', '0', 'wait'}
  end
  probe = '1'
end
if limit then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
  used = used + 1
  place = '1'
end
local send_at, reserved = now, 0
if interval > 0 then send_at = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0')) end
if per_token > 0 then
  local tat = math.max(now, tonumber(redis.call('GET', KEYS[8]) or '0')) + tokens * per_token
  send_at = math.max(send_at, tat - burst)
  redis.call('SET', KEYS[8], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  reserved = tokens
end
if interval > 0 then
  redis.call('SET', KEYS[3], tostring(send_at + interval), 'PX', math.ceil(send_at + interval - now) + 1000)
end
if interval > 0 or per_token > 0 then
  redis.call('SADD', KEYS[7], ARGV[4])
  redis.call('PEXPIRE', KEYS[7], ARGV[5])
end
if (interval > 0 or per_token > 0) and ARGV[14] == '1' then
  local rpm = interval > 0 and math.floor(60000 / interval + 0.5) or 0
  local tpm = per_token > 0 and math.floor(60000 / per_token + 0.5) or 0
  local paced = string.format('%d %s %d %s %d', rpm, by_r, tpm, by_t, math.floor(burst))
  if (rates[5] or redis.call('HGET', KEYS[9], 'paced')) ~= paced then
    redis.call('HSET', KEYS[9], 'paced', paced)
    redis.call('PEXPIRE', KEYS[9], ARGV[13])
  end
end
local paced = ''
if interval > 0 or per_token > 0 then paced = '1' end
return {false, '0', tostring(send_at - now), '', '', '', limit or '', place, tostring(used),
        tostring(reserved), tostring(per_token), probe, paced}
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
