"""Enqueue a question file: check every line first, then write jobs in pipelined, atomic chunks.

Each chunk is one Lua call that, per item, skips a job whose record exists (so resubmitting a file
enqueues nothing new, and an item whose stored question or request differs is reported) and
otherwise creates its record, its arq job and its queue entry together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from common.knowledge_store import usable_meta
from common.reconnect import OUT_OF_MEMORY, is_out_of_memory
from common.redis_health import ensure_lineage
from common.status import JobState
from common.stored_jobs import STORED_LUA
from producer.arq_jobs import arq_job, payload_json, request_json, wake_workers
from producer.items import QuestionItem
from producer.readers import Source, open_source
from producer.submit_report import (
    SKIP_INVALID_HINT,
    InvalidLinesError,
    RedisFullError,
    SubmitProgress,
    SubmitReport,
    check_batch_name,
    default_batch_name,
)
from producer.validation import beyond_context, check_file

CHUNK_ITEMS = 500
MAX_NAMED_CONFLICTS = 20
"""The CLI's advice on a file with bad lines; the API names its own parameter instead."""

# KEYS: batch record, batch items, queue, batches index, batch results, then (job record, arq job)
# per item.
# ARGV: ttl_s, first score, batch, created_at, source, job_type, enqueued_at, then per item:
# job id, arq job, item id, question, custom id ('' if none), request JSON ('' if none).
# Field names come from common.record. The queue and the item list get one command per chunk.
# Returns the number of jobs added, the number of items already in the batch with another question
# or request (left as they are), and the first $named of those items' ids.
_ENQUEUE = STORED_LUA + Template("""
local ttl = tonumber(ARGV[1])
local score = tonumber(ARGV[2])
local scored, listed, named = {}, {}, {}
local conflicts = 0
for i = 0, (#KEYS - 5) / 2 - 1 do
  local rec, job = KEYS[6 + 2 * i], KEYS[7 + 2 * i]
  local at = 8 + 6 * i
  local job_id = ARGV[at]
  if redis.call('EXISTS', rec) == 0 then
    redis.call('HSET', rec, '$batch', ARGV[3], '$job_type', ARGV[6], '$state', '$queued',
      '$enqueued_at', ARGV[7], '$item_id', ARGV[at + 2], '$question', ARGV[at + 3])
    if ARGV[at + 4] ~= '' then redis.call('HSET', rec, '$custom_id', ARGV[at + 4]) end
    if ARGV[at + 5] ~= '' then redis.call('HSET', rec, '$request', ARGV[at + 5]) end
    redis.call('EXPIRE', rec, ttl)
    redis.call('SET', job, ARGV[at + 1], 'PX', ttl * 1000)
    scored[#scored + 1] = score + i * 0.001
    scored[#scored + 1] = job_id
    listed[#listed + 1] = job_id
  else
    local question = stored(rec, KEYS[5], job_id, '$question')
    local request = stored(rec, KEYS[5], job_id, '$request')
    if question ~= ARGV[at + 3] or (request or '') ~= ARGV[at + 5] then
      conflicts = conflicts + 1
      if #named < $named then named[#named + 1] = ARGV[at + 2] end
    end
  end
end
if #listed > 0 then
  redis.call('ZADD', KEYS[3], unpack(scored))
  redis.call('RPUSH', KEYS[2], unpack(listed))
end
if redis.call('HSETNX', KEYS[1], '$created_at', ARGV[4]) == 1 then
  redis.call('HSET', KEYS[1], '$source', ARGV[5], '$job_type', ARGV[6])
end
if #listed > 0 then
  redis.call('HINCRBY', KEYS[1], '$total', #listed)
  redis.call('HINCRBY', KEYS[1], '$queued', #listed)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[3])
return {#listed, conflicts, unpack(named)}
""").substitute(
    batch=record.BATCH,
    item_id=record.ITEM_ID,
    question=record.QUESTION,
    custom_id=record.CUSTOM_ID,
    request=record.REQUEST,
    state=record.STATE,
    enqueued_at=record.ENQUEUED_AT,
    created_at=record.CREATED_AT,
    source=record.SOURCE,
    job_type=record.JOB_TYPE,
    total=record.TOTAL,
    queued=JobState.QUEUED.value,
    named=MAX_NAMED_CONFLICTS,
)


@dataclass
class _Tally:
    enqueued: int = 0
    conflicting: int = 0
    conflicting_ids: list[str] = field(default_factory=list)


async def submit_file(
    redis: Redis,
    path: Path,
    config: AskqConfig,
    *,
    batch: str | None = None,
    job_type: str | None = None,
    skip_invalid: bool = False,
    fmt: str | None = None,
    name: str | None = None,
    progress: SubmitProgress | None = None,
) -> SubmitReport:
    """Check the file at ``path``, then enqueue its questions. ``fmt`` overrides its extension;
    ``name`` stands for it in messages, the batch's source and the default batch name."""
    job_type = job_type or config.default_job_type
    base = config.job_type(job_type).knowledge  # an unknown type is refused before the file is read
    if base is not None:  # its jobs would fail: not built, or built for another model or dimension
        await usable_meta(redis, base, config.knowledge[base])
    source = open_source(path, fmt, name)
    on_checked = progress.checked if progress is not None else None
    # In a thread: a large file's check takes seconds, and the server's other requests (and the
    # CLI's progress bar) go on meanwhile.
    check = await asyncio.to_thread(
        check_file, source, context_tokens=config.provider.context_tokens, on_checked=on_checked
    )
    if check.problems and not skip_invalid:
        advice = f"nothing was enqueued ({SKIP_INVALID_HINT})"
        raise InvalidLinesError(check.describe().splitlines(), advice, check)
    if check.items == 0:  # with --skip-invalid, every line was bad: say why
        raise InvalidLinesError(check.describe().splitlines(), f"{source.name}: no questions found", check)
    batch = check_batch_name(batch) if batch else default_batch_name(Path(source.name), check.digest)
    tally = _Tally()
    try:
        await ensure_lineage(redis)  # how a worker tells, later, that Redis lost this batch
        await _enqueue(redis, source, config, batch, job_type, check.items, progress, tally)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        # Each chunk is one script that either ran whole or wrote nothing, and an item already
        # in the batch is skipped: the same command again enqueues exactly what is missing.
        raise RedisFullError(
            f"{OUT_OF_MEMORY}; {tally.enqueued:,} of {check.items:,} questions were enqueued before it "
            f"filled; submitting the same file to batch {batch} again is safe (what is in it is skipped)"
        ) from None
    invalid = len(check.problems) + check.more_problems
    return SubmitReport(
        batch,
        check.items,
        tally.enqueued,
        check.items - tally.enqueued - tally.conflicting,
        invalid,
        check.describe(),
        tally.conflicting,
        tally.conflicting_ids,
    )


async def _enqueue(
    redis: Redis,
    source: Source,
    config: AskqConfig,
    batch: str,
    job_type: str,
    total: int,
    progress: SubmitProgress | None,
    tally: _Tally,
) -> None:
    done = 0
    script = redis.register_script(_ENQUEUE)
    # Scores rise by 0.001 ms per item in input order, so workers take questions in file order.
    first_score_ms = 0.0
    writing: asyncio.Future[list[Any]] | None = None
    for chunk in _chunks(source.items(), config.provider.context_tokens):
        # Never behind the clock: a worker's claims start past the running jobs they last saw, and
        # a chunk written long after the submit began (another batch's jobs claimed meanwhile)
        # must not land behind that point.
        first_score_ms = max(first_score_ms, time.time() * 1000)
        call_keys, args = _chunk_call(chunk, batch, job_type, source.name, config, first_score_ms)
        # Redis runs one chunk's script while the next chunk is built: two processes, two cores.
        if writing is not None:
            await _written(redis, writing, tally)
        writing = asyncio.ensure_future(script(keys=call_keys, args=args))
        await asyncio.sleep(0)  # let the call go out before the next chunk is built
        first_score_ms += len(chunk) * 0.001
        done += len(chunk)
        if progress is not None:
            progress.written(done, total)
    if writing is not None:
        await _written(redis, writing, tally)


async def _written(redis: Redis, writing: asyncio.Future[list[Any]], tally: _Tally) -> None:
    added, conflicts, *named = await writing
    if added and not tally.enqueued:
        # Idle workers start on the first chunk while the rest of the file is written.
        await wake_workers(redis)
    tally.enqueued += int(added)
    tally.conflicting += int(conflicts)
    room = MAX_NAMED_CONFLICTS - len(tally.conflicting_ids)
    tally.conflicting_ids += [
        item.decode() if isinstance(item, bytes) else str(item) for item in named[:room]
    ]


def _chunks(parsed: Iterator[object], context_tokens: int) -> Iterator[list[QuestionItem]]:
    """The good questions in chunks: the checking pass's bad lines are skipped here too."""
    chunk: list[QuestionItem] = []
    for item in parsed:
        if isinstance(item, QuestionItem) and beyond_context(item, context_tokens) is None:
            chunk.append(item)
            if len(chunk) == CHUNK_ITEMS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _chunk_call(
    chunk: list[QuestionItem], batch: str, job_type: str, source: str, config: AskqConfig, score_ms: float
) -> tuple[list[str], list[str | int | float | bytes]]:
    now = time.time()
    now_ms = int(now * 1000)
    script_keys = [
        keys.batch_record(batch),
        keys.batch_items(batch),
        keys.QUEUE,
        keys.BATCHES,
        keys.batch_results(batch),
    ]
    args: list[str | int | float | bytes] = [
        config.retention.ttl_s,
        f"{score_ms:.3f}",
        batch,
        f"{now:.3f}",
        source,
        job_type,
        f"{now:.3f}",
    ]
    for item in chunk:
        job_id = keys.job_id(batch, item.item_id)
        script_keys += [keys.job_record(job_id), keys.arq_job(job_id)]
        args += [
            job_id,
            arq_job(payload_json(item, batch, job_type), now_ms),
            item.item_id,
            item.question,
            item.custom_id or "",
            request_json(item) or "",
        ]
    return script_keys, args
