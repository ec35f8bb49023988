"""The cluster's metrics as Redis holds them, for ``GET /metrics``: two round trips, never a scan.

- The counters (jobs ended, attempts, tokens, latency): one HGETALL of ``keys.METRICS``, which the
  Lua that ends a job writes (``common.metrics``).
- The queues' depth: ZCARD of arq's two queues (questions and schedules).
- Workers alive: one ZCOUNT of the unexpired in ``keys.WORKERS``, in Redis's time.
- Jobs running: the batches' own ``running`` counters (what ``askq status`` shows), summed over the
  batch index. A global running gauge would drift when a batch is deleted or expires with jobs in it;
  these cannot, being the counters themselves. It costs one HMGET per batch kept, pipelined in one
  round trip: a scrape is O(batches kept), which ``retention.ttl_s`` bounds (the names of expired
  batches, which the index keeps until read, are dropped as the scrape meets them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from common import keys, metrics, record
from common.status import JobState

# KEYS: the workers set. Those whose expiry (Redis time, ms) is still ahead.
_ALIVE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')
"""
QUEUES = {"questions": keys.QUEUE, "schedules": keys.SCHEDULE_QUEUE}
"""The ``queue`` label of each arq queue."""
ENDED_STATES = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value)


@dataclass(frozen=True)
class Histogram:
    buckets: list[tuple[str, int]]
    """(upper bound label, observations at or below it), cumulative, ending with ``+Inf``."""
    sum_s: float
    count: int


@dataclass(frozen=True)
class ClusterMetrics:
    counters: dict[str, int]
    """The fields of ``keys.METRICS``."""
    queue_depth: dict[str, int]
    jobs_running: int
    workers_alive: int
    jobs_ended: dict[str, int] = field(init=False)
    attempts: dict[tuple[str, str], int] = field(init=False)
    """(outcome, status) -> attempts."""

    def __post_init__(self) -> None:
        ended = {state: self.counters.get(metrics.job_ended(state), 0) for state in ENDED_STATES}
        object.__setattr__(self, "jobs_ended", ended)
        attempts: dict[tuple[str, str], int] = {}
        for name, count in self.counters.items():
            if name.startswith(metrics.ATTEMPTS):
                outcome, _, status = name.removeprefix(metrics.ATTEMPTS).partition(":")
                attempts[outcome, status] = count
        object.__setattr__(self, "attempts", dict(sorted(attempts.items())))

    @property
    def tokens(self) -> dict[str, int]:
        return {
            "prompt": self.counters.get(metrics.TOKENS_PROMPT, 0),
            "completion": self.counters.get(metrics.TOKENS_COMPLETION, 0),
        }

    @property
    def latency(self) -> Histogram:
        labels = [metrics.bound_label(bound) for bound in metrics.LATENCY_BOUNDS_S] + [metrics.INF]
        seen, buckets = 0, []
        for label in labels:
            seen += self.counters.get(metrics.LATENCY_BUCKET + label, 0)
            buckets.append((label, seen))
        return Histogram(buckets, self.counters.get(metrics.LATENCY_SUM_US, 0) / 1e6, seen)


async def cluster_metrics(redis: Redis) -> ClusterMetrics:
    """Every metric of the cluster, read now."""
    alive = redis.register_script(_ALIVE)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        for queue in QUEUES.values():
            pipe.zcard(queue)
        await alive(keys=[keys.WORKERS], client=pipe)
        pipe.zrange(keys.BATCHES, 0, -1)
        counters, *depths, workers, batches = await pipe.execute()
    return ClusterMetrics(
        counters={name.decode(): int(count) for name, count in counters.items()},
        queue_depth=dict(zip(QUEUES, (int(depth) for depth in depths), strict=True)),
        jobs_running=await _running(redis, [batch.decode() for batch in batches]),
        workers_alive=int(workers),
    )


async def _running(redis: Redis, batches: list[str]) -> int:
    if not batches:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for batch in batches:
            # created_at: every batch record has it (a counter is absent until it first moves).
            pipe.hmget(keys.batch_record(batch), [JobState.RUNNING.value, record.CREATED_AT])
        found = await pipe.execute()
    expired = [batch for batch, (_, created) in zip(batches, found, strict=True) if created is None]
    if expired:
        # A batch expired but still in the index has no record: nothing running. Its name goes now,
        # as a listing drops it, so a scrape's cost stays bounded by the batches kept.
        await redis.zrem(keys.BATCHES, *expired)
    return sum(int(count) for count, _ in found if count is not None)
