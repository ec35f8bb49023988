"""A batch's status from its counters and latency list (read on from where this process last read it,
``producer.latencies``): no keyspace scan, whatever its size.

Its job ids are another matter: 200,000 of them took 2.3 MB in Redis and 2.7 MB of JSON. A status
reads the first few and how many there are; every id is walked a page at a time (job_id_pages)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.errors import NotFoundError
from common.provider_state import provider_states
from common.redis_health import missing_batch, read_lineage
from common.status import TERMINAL_STATES, JobState
from producer.latencies import FIRST_TOKENS, LATENCIES, LatencyCache

PAGE_ITEMS = 500
"""Job ids read per round trip when walking a batch in input order."""
SHOWN_JOB_IDS = 10
"""Job ids a status shows, in its table and its JSON: the rest are for ``askq status BATCH --ids``."""


async def unknown_batch(redis: Redis, batch: str) -> NotFoundError:
    """A batch not in Redis; said to be lost when Redis lost askq's data (``common.redis_health``)."""
    return NotFoundError(missing_batch(batch, await read_lineage(redis)))


async def job_id_pages(redis: Redis, batch: str) -> AsyncGenerator[list[str], None]:
    """The batch's job ids in input order, a page at a time; NotFoundError for an unknown batch."""
    if not await redis.exists(keys.batch_record(batch)):
        raise await unknown_batch(redis, batch)
    start = 0
    while True:
        page = await redis.lrange(keys.batch_items(batch), start, start + PAGE_ITEMS - 1)  # type: ignore[misc]  # redis-py types sync and async alike
        if not page:
            return
        yield [job_id.decode() for job_id in page]
        start += PAGE_ITEMS


@dataclass(frozen=True)
class ErrorCount:
    """How often the batch's attempts and jobs failed for one reason (``HTTP 429``, ``timeout``)."""

    reason: str
    retried: int
    """Attempts that failed so and were tried again."""
    failed: int
    """Jobs that failed so."""

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "retried": self.retried, "failed": self.failed}


@dataclass(frozen=True)
class BatchStatus:
    batch: str
    total: int
    counts: dict[JobState, int]
    prompt_tokens: int
    completion_tokens: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    created_at: float
    source: str
    job_type: str
    job_ids: list[str] = field(default_factory=list)
    """The first ids in input order, as many as were asked for (none unless ``with_job_ids``)."""
    job_ids_total: int | None = None
    """How many job ids the batch has; None where it was not read (a listing of batches)."""
    lost_prompt_tokens_est: int = 0
    lost_completion_tokens_est: int = 0
    """What runs lost mid-way (their worker killed) spent, estimated: the provider reported nothing."""
    usage_estimated: int = 0
    """Jobs whose usage askq estimated (the provider reported none): the token counts are approximate."""
    truncated: int = 0
    """Answers cut at max_tokens (finish_reason ``length``)."""
    errors: tuple[ErrorCount, ...] = ()
    """Failed attempts and jobs by reason, the most frequent first."""
    first_token_p50_ms: float | None = None
    first_token_p95_ms: float | None = None
    """Of succeeded jobs: from their answering attempt's request to its stream's first piece."""

    @property
    def finished(self) -> int:
        return sum(self.counts[state] for state in TERMINAL_STATES)

    @property
    def done(self) -> bool:
        return self.finished >= self.total

    @property
    def all_succeeded(self) -> bool:
        """Every job has ended, and none failed or was cancelled: the exit status scripts test."""
        return self.counts[JobState.SUCCEEDED] >= self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "total": self.total,
            "counts": {state.value: count for state, count in self.counts.items()},
            "done": self.done,
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
                "lost_runs_estimate": {
                    "prompt": self.lost_prompt_tokens_est,
                    "completion": self.lost_completion_tokens_est,
                },
                "estimated_jobs": self.usage_estimated,
            },
            "truncated": self.truncated,
            "errors": [error.to_json() for error in self.errors],
            "latency_ms": {"p50": self.latency_p50_ms, "p95": self.latency_p95_ms},
            "first_token_ms": {"p50": self.first_token_p50_ms, "p95": self.first_token_p95_ms},
            "created_at": self.created_at,
            "source": self.source,
            "job_type": self.job_type,
            "job_ids": self.job_ids,
            "job_ids_total": self.job_ids_total,
        }

    def listing_json(self) -> dict[str, Any]:
        """A batch in ``askq batches --json`` and ``GET /api/batches``: no job ids, a listing stays small."""
        document = self.to_json()
        del document["job_ids"]
        return document


async def status_document(redis: Redis, batch: str) -> dict[str, Any]:
    """What ``askq status BATCH --json`` prints and ``GET /api/batches/{batch}`` answers: the counters,
    the first job ids, the providers in an outage, at their in-flight limit, cooling down or paced,
    and why the batch is halted (a 401: its jobs are not sent until ``askq retry``), if it is."""
    result = await batch_status(redis, batch, job_id_limit=SHOWN_JOB_IDS)
    providers = await provider_states(redis)
    return {
        **result.to_json(),
        "providers": [state.to_json() for state in providers],
        "halt": await halt_reason(redis, batch),
    }


async def halt_reason(redis: Redis, batch: str) -> str | None:
    """Why the batch's jobs are not sent (the provider refused the key: ``worker.answering.gate``)."""
    halt = await redis.get(keys.batch_halt(batch))
    return halt.decode() if halt is not None else None


async def batch_status(
    redis: Redis,
    batch: str,
    *,
    with_job_ids: bool = True,
    job_id_limit: int | None = None,
    with_latencies: bool = True,
) -> BatchStatus:
    """The batch's counters and its number of job ids; percentiles unless ``with_latencies`` is False
    (cheap enough to poll). With ``with_job_ids``, its first ``job_id_limit`` ids, or every one when
    None: for small batches only, a large one is walked with job_id_pages."""
    last = -1 if job_id_limit is None else job_id_limit - 1
    lists = ((LATENCIES, keys.batch_latencies(batch)), (FIRST_TOKENS, keys.batch_first_tokens(batch)))
    starts = [cache.start(batch) for cache, _ in lists]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.batch_record(batch))
        pipe.llen(keys.batch_items(batch))
        if with_latencies:  # only those added since this process last read them (producer.latencies)
            for (_, key), start in zip(lists, starts, strict=True):
                pipe.lrange(key, start, -1)
        if with_job_ids and job_id_limit != 0:  # LRANGE 0 -1 would be every id, not none
            pipe.lrange(keys.batch_items(batch), 0, last)
        replies = await pipe.execute()
    fields_reply, items_total, *rest = replies
    tails = rest[: len(lists)] if with_latencies else []
    items_reply = rest[len(tails)] if len(rest) > len(tails) else []
    if not fields_reply:
        raise await unknown_batch(redis, batch)
    job_ids = [job_id.decode() for job_id in items_reply]
    created_at = fields_reply.get(record.CREATED_AT.encode(), b"")
    percentiles: list[tuple[float | None, float | None]] = [(None, None), (None, None)]
    if with_latencies:
        percentiles = [
            await _percentiles(redis, cache, key, batch, created_at, start, tail)
            for (cache, key), start, tail in zip(lists, starts, tails, strict=True)
        ]
    status = _status(batch, fields_reply, percentiles[0], job_ids, job_ids_total=items_total)
    return replace(status, first_token_p50_ms=percentiles[1][0], first_token_p95_ms=percentiles[1][1])


async def _percentiles(
    redis: Redis, cache: LatencyCache, key: str, batch: str, created_at: bytes, start: int, tail: list[bytes]
) -> tuple[float | None, float | None]:
    """p50 and p95 of the list at ``key``, of which ``tail`` is what follows the ``start`` values held."""
    found = cache.percentiles(batch, created_at, start, tail)
    if found is None:  # what was held is another batch's of this name: read this one's whole
        whole = await redis.lrange(key, 0, -1)  # type: ignore[misc]  # redis-py types sync and async alike
        found = cache.percentiles(batch, created_at, 0, whole)
    return found or (None, None)


async def recent_batches(redis: Redis, limit: int, *, after: str | None = None) -> list[BatchStatus]:
    """The ``limit`` most recently created batches still kept, newest first, from their counters.

    ``after``: a batch an earlier page ended with; the listing goes on past it, wherever newer batches
    have pushed it since (NotFoundError once it has left the index)."""
    found: list[BatchStatus] = []
    start = 0
    if after is not None:
        rank = await redis.zrevrank(keys.BATCHES, after)
        if rank is None:
            raise await unknown_batch(redis, after)
        start = rank + 1
    while len(found) < limit:
        names = await redis.zrevrange(keys.BATCHES, start, start + limit - 1)
        if not names:
            break
        start += len(names)
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.batch_record(name.decode()))
            records = await pipe.execute()
        pairs = list(zip(names, records, strict=True))
        found += [_status(name.decode(), raw, (None, None), []) for name, raw in pairs if raw]
        expired = [name for name, raw in pairs if not raw]
        if expired:
            # The index has no expiry of its own: an expired batch's name goes when a listing meets it.
            await redis.zrem(keys.BATCHES, *expired)
            start -= len(expired)
    return found[:limit]


def _status(
    batch: str,
    raw: dict[bytes, bytes],
    percentiles: tuple[float | None, float | None],
    job_ids: list[str],
    *,
    job_ids_total: int | None = None,
) -> BatchStatus:
    fields = {name.decode(): value.decode() for name, value in raw.items()}
    p50, p95 = percentiles
    return BatchStatus(
        batch=batch,
        total=int(fields.get(record.TOTAL, 0)),
        counts={state: max(int(fields.get(state.value, 0)), 0) for state in JobState},
        prompt_tokens=int(fields.get(record.PROMPT_TOKENS, 0)),
        completion_tokens=int(fields.get(record.COMPLETION_TOKENS, 0)),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        created_at=float(fields.get(record.CREATED_AT, 0)),
        source=fields.get(record.SOURCE, ""),
        job_type=fields.get(record.JOB_TYPE, ""),
        job_ids=job_ids,
        job_ids_total=job_ids_total,
        lost_prompt_tokens_est=int(fields.get(record.LOST_PROMPT_TOKENS_EST, 0)),
        lost_completion_tokens_est=int(fields.get(record.LOST_COMPLETION_TOKENS_EST, 0)),
        usage_estimated=int(fields.get(record.USAGE_ESTIMATED, 0)),
        truncated=int(fields.get(record.TRUNCATED, 0)),
        errors=_errors(fields),
    )


def _errors(fields: dict[str, str]) -> tuple[ErrorCount, ...]:
    """The batch record's error counters (``record.ERRORS_RETRIED`` and ``ERRORS_FAILED``), by reason."""
    counts: dict[str, list[int]] = {}
    for name, value in fields.items():
        for place, prefix in enumerate((record.ERRORS_RETRIED, record.ERRORS_FAILED)):
            if name.startswith(prefix):
                counts.setdefault(name.removeprefix(prefix), [0, 0])[place] = int(value)
    found = [ErrorCount(reason, retried, failed) for reason, (retried, failed) in counts.items()]
    return tuple(sorted(found, key=lambda error: (-(error.retried + error.failed), error.reason)))
