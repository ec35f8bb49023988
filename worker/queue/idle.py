"""How long a worker waits for a wake-up before it looks at its queue again, and the look itself.

Producers publish on the queue's wake channel when they add work (``askq submit``, ``retry``,
``schedule run``) or ask for an abort (``askq cancel``), and a job ending wakes its own worker
(``worker.queue.wakeups``). A worker listening there needs a timer only for what nobody announces:

- a deferred job coming due (arq's delayed retries, a schedule's tick enqueued ahead of its time):
  the queue's lowest score after now, which the look reads with the head;
- a job whose worker was lost: its lease ends unannounced, and a claim reads the queue from its
  head every third of a lease to find it (``worker.queue.claims``);
- arq's health record, every ``health_check_interval``, and the schedules worker's next cron tick;
- anything else, a plain arq client enqueuing without a wake-up for one: a look every third of a
  lease at most.

So an idle worker makes one script call every few seconds, where polling every ``poll_delay_s``
(0.05 s) sent about a hundred commands a second. It still polls every ``poll_delay_s`` when no
wake-up would reach it (its subscription is down), when its last claim stopped part-way down a
run of running jobs (the next claim reads on from there), and under ``--burst``.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

CRON_EARLY_S = 0.5
"""arq enqueues a cron tick, deferred to its time, when a poll finds it due within the next second:
the poll for a tick comes this long ahead of it."""

# KEYS: queue. ARGV: now (ms).
# Returns {the head's id when its score is due (a running job's too), or false;
#          the lowest score after now, or false when there is none}.
_LOOK = """
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head == 0 then return {false, false} end
if (tonumber(head[2]) or 0) > tonumber(ARGV[1]) then return {false, head[2]} end
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {head[1], later[2] or false}
"""


class QueueLook:
    """One round trip: whether anything in the queue is due, and when its next deferred job is."""

    def __init__(self, redis: Redis, queue: str) -> None:
        self._queue = queue
        self._script = redis.register_script(_LOOK)

    async def __call__(self, now_ms: int) -> tuple[list[bytes], float | None]:
        """The due head's id (none when nothing is due), and the next score after ``now_ms`` as
        epoch seconds (None when no job is deferred)."""
        head, later = await self._script(keys=[self._queue], args=[now_ms])
        return ([head] if head else []), (float(later) / 1000 if later else None)


def wait_s(now_s: float, deadlines_s: Iterable[float | None], longest_s: float) -> float:
    """Seconds from ``now_s`` to the earliest of ``deadlines_s`` (epoch seconds; None for a timer
    not set), ``longest_s`` at most, and never less than 0."""
    left_s = [deadline - now_s for deadline in deadlines_s if deadline is not None]
    return max(min([longest_s, *left_s]), 0.0)
