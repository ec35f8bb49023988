"""The Lua of the shared in-flight limit (``worker.answering.in_flight``): each change of the limit
is one compare-and-set, so workers seeing the same thing change it once."""

from __future__ import annotations

# KEYS: limit, providers. ARGV: new limit, reason, endpoint, idle ms, the limit seen (0: none, -1: any).
# Lowers the limit to ARGV[1], only from the limit the caller saw (none: only when unset), never up.
# Returns {limit now, limit before or ''}; before is '' when nothing changed.
LOWER = """
local current = tonumber(redis.call('HGET', KEYS[1], 'limit') or '0')
local new, seen = tonumber(ARGV[1]), tonumber(ARGV[5])
if (seen >= 0 and current ~= seen) or (current > 0 and current <= new) then return {tostring(current), ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'limit', new, 'was', current, 'reason', ARGV[2], 'since_ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {tostring(new), tostring(current)}
"""

# KEYS: limit. ARGV: the limit seen, ceiling, idle ms. Returns the new limit ('0': dropped), '' if
# the limit changed meanwhile (another worker raised or lowered it).
RAISE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'limit') or '0')
if current == 0 or current ~= tonumber(ARGV[1]) then return '' end
if current + 1 >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return '0'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'limit', current + 1, 'was', current, 'since_ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(current + 1)
"""

# KEYS: calls. ARGV: ms a place is held, call ids. Renews the places still held.
RENEW = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""
