"""arq's finish of a job, unless askq's record says the job was queued again meanwhile.

arq deletes a job's keys when a run ends for good: aborted by ``askq cancel``, rejected, or skipped
as already finished. But ``askq retry --cancelled`` may have put the job back in the queue while
that run was ending (its record ``queued``, a new arq job written under the same id): deleting the
keys then would leave a record queued with no job to run it, for ever. This finish looks at the
record first, in the same atomic call, and leaves a re-queued job to be claimed again.
"""

from __future__ import annotations

from enum import IntEnum

from redis.asyncio import Redis

from common import keys, record
from common.status import JobState

# KEYS: job record, in-progress, retry count, arq job, abort set, queue, the batch's live set.
# ARGV: job id, this worker's lease token ('' under arq's own worker). Returns 1 when the job was
# finished, 0 when it was left queued (its claim released), 2 when another worker's claim holds it
# (nothing touched).
_FINISH_UNLESS_QUEUED = f"""
local holder = redis.call('GET', KEYS[2])
if ARGV[2] ~= '' and holder and holder ~= ARGV[2] then return 2 end
if redis.call('HGET', KEYS[1], '{record.STATE}') == '{JobState.QUEUED.value}' then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
if redis.call('HGET', KEYS[1], '{record.STATE}') == '{JobState.CANCELLED.value}' then
  -- Cancelled, and no run of it goes on (it was aborted before it started, or its run stopped
  -- before it could say so): a retry need not wait for it, and its events need not stay live.
  redis.call('HDEL', KEYS[1], '{record.STOPPING}')
  redis.call('ZREM', KEYS[7], ARGV[1])
end
return 1
"""


class Finish(IntEnum):
    LEFT_QUEUED = 0
    """A retry queued the job again while its run ended: it stays, its claim released."""
    FINISHED = 1
    HELD_ELSEWHERE = 2
    """Another worker claimed it since (this run's lease was lost): its keys are that worker's."""


class GuardedFinish:
    def __init__(self, redis: Redis, queue: str, token: str | None = None) -> None:
        self._queue = queue
        self._token = token or ""
        self._script = redis.register_script(_FINISH_UNLESS_QUEUED)

    async def __call__(self, job_id: str) -> Finish:
        """Finish the job as arq would (no result kept), unless a retry queued it again or another
        worker holds it now."""
        call_keys = [
            keys.job_record(job_id),
            keys.arq_in_progress(job_id),
            keys.arq_retry(job_id),
            keys.arq_job(job_id),
            keys.ARQ_ABORT,
            self._queue,
            keys.batch_live(keys.split_job_id(job_id)[0]),
        ]
        return Finish(int(await self._script(keys=call_keys, args=[job_id, self._token])))
