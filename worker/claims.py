"""Claiming queued jobs in one round trip, where arq spends two to read the queue plus four per job.

arq reads up to ``queue_read_limit`` ids from the queue (five times ``max_jobs``: a thousand ids for
a worker of 200), then checks each job with WATCH, EXISTS, ZSCORE and a MULTI/EXEC of its own,
one job after another. Here one Lua call walks the due part of the queue itself, passes over the
jobs running anywhere (arq keeps them queued until they end), and claims up to the worker's free
slots, atomically, so no other worker can claim a job in between. Ids never cross the network
twice, and a poll's cost follows the jobs it starts, not the queue's length.
"""

from __future__ import annotations

from redis.asyncio import Redis

from common import keys

PAGE = 256
"""Queue entries the script reads per step; running jobs at the head are skipped a page at a time."""

# KEYS: queue. ARGV: now (ms), claim (ms), in-progress key prefix, most to claim, page size,
# most entries to look at. Returns job id, score, job id, score... for each job claimed.
_CLAIM = """
local now, claim_ms, prefix = ARGV[1], ARGV[2], ARGV[3]
local most, page, look_at = tonumber(ARGV[4]) * 2, tonumber(ARGV[5]), tonumber(ARGV[6])
local claimed = {}
local offset = 0
while #claimed < most and offset < look_at do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', offset, page)
  for i = 1, #due, 2 do
    local job_id = due[i]
    if redis.call('EXISTS', prefix .. job_id) == 0 then
      redis.call('SET', prefix .. job_id, '1', 'PX', claim_ms)
      claimed[#claimed + 1] = job_id
      claimed[#claimed + 1] = due[i + 1]
      if #claimed >= most then break end
    end
  end
  if #due < page * 2 then break end
  offset = offset + page
end
return claimed
"""


class JobClaims:
    def __init__(self, redis: Redis, queue: str, claim_ms: int, *, look_at: int) -> None:
        """``look_at``: queue entries a poll reads at most, running ones included (arq's read limit)."""
        self._queue = queue
        self._claim_ms = claim_ms
        self._look_at = look_at
        self._script = redis.register_script(_CLAIM)

    async def claim(self, most: int, now_ms: int) -> list[tuple[str, int]]:
        """Up to ``most`` due jobs, oldest first, now marked in progress for this worker, with their
        queue scores. A job in progress anywhere (this worker's own included) is passed over."""
        if most <= 0:
            return []
        args: list[str | int] = [
            now_ms,
            self._claim_ms,
            keys.ARQ_IN_PROGRESS_PREFIX,
            most,
            PAGE,
            self._look_at,
        ]
        flat = await self._script(keys=[self._queue], args=args)
        return [(flat[i].decode(), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
