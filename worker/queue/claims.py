"""Claiming queued jobs in one round trip, where arq spends two to read the queue plus four per job.

arq reads up to ``queue_read_limit`` ids from the queue (five times ``max_jobs``: a thousand ids for
a worker of 200), then checks each job with WATCH, EXISTS, ZSCORE and a MULTI/EXEC of its own,
one job after another. Here one Lua call walks the due part of the queue itself, passes over the
jobs running anywhere (arq keeps them queued until they end), and claims up to the worker's free
slots, atomically, so no other worker can claim a job in between. Ids never cross the network
twice, and a poll's cost follows the jobs it starts, not the queue's length.

The running jobs sit at the head of the queue, the oldest first, and every poll would walk past all
of them again (400 checks a poll for one worker of 200 slots, more for each worker added). So a
claim remembers the score up to which it found only running jobs, and the next one starts there.
A job behind that point can only become free again when its worker is lost and its claim expires;
the queue is read from its head every ``rewalk_s`` for those, and at once when a worker says it
handed a job back (``read_from_head``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from common import keys

PAGE = 256
"""Queue entries the script reads per step; running jobs at the head are skipped a page at a time."""

# KEYS: queue. ARGV: now (ms), claim (ms), in-progress key prefix, most to claim, page size,
# most entries to look at, lowest score to read from, the worker's lease token (the keys' value).
# Returns job id, score... for each job claimed, then the score up to which every entry read was
# running (or just claimed), or '' if none.
_CLAIM = """
local now, claim_ms, prefix = ARGV[1], ARGV[2], ARGV[3]
local most, page, look_at = tonumber(ARGV[4]) * 2, tonumber(ARGV[5]), tonumber(ARGV[6])
local claimed = {}
local running_through, all_running = '', true
local offset = 0
while #claimed < most and offset < look_at do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[7], now, 'WITHSCORES', 'LIMIT', offset, page)
  for i = 1, #due, 2 do
    local job_id = due[i]
    if redis.call('EXISTS', prefix .. job_id) == 0 then
      if #claimed >= most then all_running = false; break end
      redis.call('SET', prefix .. job_id, ARGV[8], 'PX', claim_ms)
      claimed[#claimed + 1] = job_id
      claimed[#claimed + 1] = due[i + 1]
    end
    if all_running then running_through = due[i + 1] end
  end
  if #due < page * 2 or not all_running then break end
  offset = offset + page
end
claimed[#claimed + 1] = running_through
return claimed
"""


class JobClaims:
    def __init__(
        self,
        redis: Redis,
        queue: str,
        claim_ms: int,
        *,
        look_at: int,
        rewalk_s: float,
        token: str = "1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``look_at``: queue entries a poll reads at most, running ones included (arq's read limit).
        ``rewalk_s``: how often a claim reads from the queue's head, for jobs freed behind it.
        ``token``: what a claimed job's in-progress key holds, naming this worker as its holder."""
        self._token = token
        self._queue = queue
        self._claim_ms = claim_ms
        self._look_at = look_at
        self._rewalk_s = rewalk_s
        self._clock = clock
        self._script = redis.register_script(_CLAIM)
        self._read_from = "-inf"
        self._read_head_at: float | None = None

    def read_from_head(self) -> None:
        """The next claim reads the queue from its head: a job went back to its old place."""
        self._read_head_at = None

    async def claim(self, most: int, now_ms: int) -> list[tuple[str, int]]:
        """Up to ``most`` due jobs, oldest first, now marked in progress for this worker, with their
        queue scores. A job in progress anywhere (this worker's own included) is passed over."""
        if most <= 0:
            return []
        now_s = self._clock()
        if self._read_head_at is None or now_s - self._read_head_at >= self._rewalk_s:
            self._read_from, self._read_head_at = "-inf", now_s
        args: list[str | int] = [
            now_ms,
            self._claim_ms,
            keys.ARQ_IN_PROGRESS_PREFIX,
            most,
            PAGE,
            self._look_at,
            self._read_from,
            self._token,
        ]
        *flat, running_through = await self._script(keys=[self._queue], args=args)
        if running_through:
            self._read_from = running_through.decode()
        return [(flat[i].decode(), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]

    @property
    def read_from(self) -> str:
        """The lowest score the next claim reads from ('-inf': the queue's head)."""
        return self._read_from

    def head_read_in_s(self) -> float:
        """Seconds until a claim reads the queue from its head again, for jobs freed behind its start."""
        if self._read_head_at is None:
            return 0.0
        return max(self._read_head_at + self._rewalk_s - self._clock(), 0.0)
