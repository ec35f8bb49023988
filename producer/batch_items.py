"""A batch's items a page at a time, in input order, optionally only those in one state.

The batch's item list says which jobs it has; only their records say what state each is in. A page
filtered by state reads the states of at most ``SCAN_MAX`` records (a pipelined ``HMGET`` each,
``PAGE_ITEMS`` a round trip) and then the whole jobs it keeps, so a request costs the same in a batch
of a thousand or a million items: when the scan ends before the page is full, the page says where it
stopped (``next_after``) and the next request goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.status import JobState
from common.stored_jobs import read_jobs
from producer.batches import PAGE_ITEMS, unknown_batch
from producer.results import result_from_record

SCAN_MAX = 5000
"""Records whose state one filtered page reads at most."""
TEXT_CHARS = 300
"""A listed question, answer or error is cut to this many characters (the job holds the whole)."""


# KEYS: job records. ARGV: the state field's name. Returns each record's state, or false.
_STATES = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[1]) end
return out
"""


@dataclass(frozen=True)
class ItemPage:
    items: list[dict[str, Any]]
    next_after: int | None
    """The index to pass as ``after`` for the next page; None when the list was read to its end."""
    scanned: int
    """Item list entries this page looked at."""
    total: int
    """Items in the batch."""


async def item_page(
    redis: Redis, batch: str, *, state: JobState | None = None, after: int | None = None, limit: int = 50
) -> ItemPage:
    """The items after index ``after`` (from the first when None), at most ``limit`` of them, only those
    in ``state`` if given; NotFoundError for an unknown batch."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(keys.batch_record(batch))
        pipe.llen(keys.batch_items(batch))
        exists, total = await pipe.execute()
    if not exists:
        raise await unknown_batch(redis, batch)
    start = 0 if after is None else after + 1
    if state is None:
        chosen = await _ids(redis, batch, start, limit)
        last = start + len(chosen) - 1
    else:
        chosen, last = await _scan(redis, batch, state, start, limit)
    job_ids = [job_id for _, job_id in chosen]
    records = await read_jobs(redis, job_ids)
    items = [_item(index, job_id, fields) for (index, job_id), fields in zip(chosen, records, strict=True)]
    more = last + 1 < total
    return ItemPage(items, last if more else None, max(0, last + 1 - start), total)


async def _ids(redis: Redis, batch: str, start: int, count: int) -> list[tuple[int, str]]:
    """(index, job id) of ``count`` items from index ``start``."""
    page = await redis.lrange(keys.batch_items(batch), start, start + count - 1)  # type: ignore[misc]  # redis-py types sync and async alike
    return [(start + offset, job_id.decode()) for offset, job_id in enumerate(page)]


async def _scan(
    redis: Redis, batch: str, state: JobState, start: int, limit: int
) -> tuple[list[tuple[int, str]], int]:
    """Up to ``limit`` items in ``state`` from index ``start``, reading at most ``SCAN_MAX`` states;
    with the index of the last item looked at."""
    chosen: list[tuple[int, str]] = []
    last = start - 1
    wanted = state.value.encode()
    while len(chosen) < limit and last + 1 - start < SCAN_MAX:
        page = await _ids(redis, batch, last + 1, min(PAGE_ITEMS, SCAN_MAX - (last + 1 - start)))
        if not page:
            break
        record_keys = [keys.job_record(job_id) for _, job_id in page]
        # One script call a page, not a command a record: 500 HGETs through the client cost 10 times as much.
        states = await redis.eval(_STATES, len(record_keys), *record_keys, record.STATE)  # type: ignore[misc]  # redis-py types sync and async alike
        for (index, job_id), found in zip(page, states, strict=True):
            last = index
            if found == wanted:
                chosen.append((index, job_id))
                if len(chosen) == limit:
                    break
    return chosen, last


def _item(index: int, job_id: str, fields: dict[str, str]) -> dict[str, Any]:
    result = result_from_record(job_id, fields)
    return {
        "index": index,
        "id": keys.split_job_id(job_id)[1],
        "job_id": job_id,
        "state": result.status,
        "question": _cut(result.question),
        "answer": _cut(result.answer),
        "error": _cut(result.error),
        "attempts": result.attempts,
        "finished_at": result.finished_at,
    }


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= TEXT_CHARS:
        return text
    return text[: TEXT_CHARS - 1] + "…"
