"""Claiming queued jobs in one round trip, where arq spends four per job.

arq's ``start_jobs`` checks each job with WATCH, EXISTS, ZSCORE and a MULTI/EXEC of its own: four
round trips before a job starts, one job after another. The same checks run here in one Lua call
for every job a poll found, atomically, so no other worker can claim a job in between.
"""

from __future__ import annotations

from redis.asyncio import Redis

from common import keys

# KEYS: queue. ARGV: now (ms), claim (ms), in-progress key prefix, most to claim, then the job ids.
# Returns job id, score, job id, score... for each job claimed: due, and not running elsewhere.
_CLAIM = """
local now, claim_ms, prefix, most = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]) * 2
local claimed = {}
for i = 5, #ARGV do
  if #claimed >= most then break end
  local job_id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], job_id)
  if score and tonumber(score) <= now and redis.call('EXISTS', prefix .. job_id) == 0 then
    redis.call('SET', prefix .. job_id, '1', 'PX', claim_ms)
    claimed[#claimed + 1] = job_id
    claimed[#claimed + 1] = score
  end
end
return claimed
"""


class JobClaims:
    def __init__(self, redis: Redis, queue: str, claim_ms: int) -> None:
        self._queue = queue
        self._claim_ms = claim_ms
        self._script = redis.register_script(_CLAIM)

    async def claim(self, job_ids: list[str], most: int, now_ms: int) -> list[tuple[str, int]]:
        """Up to ``most`` of ``job_ids``, now marked in progress for this worker, with their queue scores.

        A job still in the queue may be running (arq removes it when it ends): it is passed over.
        """
        if not job_ids or most <= 0:
            return []
        args: list[str | int] = [now_ms, self._claim_ms, keys.ARQ_IN_PROGRESS_PREFIX, most, *job_ids]
        flat = await self._script(keys=[self._queue], args=args)
        return [(flat[i].decode(), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
