"""Enqueue a question file: check every line first, then write jobs in pipelined, atomic chunks.

Each chunk is one Lua call that, per item, skips a job whose record exists (so resubmitting a file
enqueues nothing new) and otherwise creates its record, its arq job and its queue entry together.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from common.errors import InputError
from common.status import JobState
from producer.arq_jobs import arq_job, payload_for, request_json, wake_workers
from producer.items import QuestionItem
from producer.readers import read_items
from producer.validation import beyond_context, check_file

CHUNK_ITEMS = 500
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# KEYS: batch record, batch items, queue, batches index, then (job record, arq job) per item.
# Field names come from common.record.
# ARGV: ttl_s, first score, batch, created_at, source, job_type, then (job id, record JSON, job) per item.
_ENQUEUE = Template("""
local ttl = tonumber(ARGV[1])
local score = tonumber(ARGV[2])
local added = 0
for i = 0, (#KEYS - 4) / 2 - 1 do
  local rec, job = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local job_id, fields, payload = ARGV[7 + 3 * i], ARGV[8 + 3 * i], ARGV[9 + 3 * i]
  if redis.call('EXISTS', rec) == 0 then
    local flat = {}
    for name, value in pairs(cjson.decode(fields)) do
      flat[#flat + 1] = name
      flat[#flat + 1] = value
    end
    redis.call('HSET', rec, unpack(flat))
    redis.call('EXPIRE', rec, ttl)
    redis.call('SET', job, payload, 'PX', ttl * 1000)
    redis.call('ZADD', KEYS[3], score + i * 0.001, job_id)
    redis.call('RPUSH', KEYS[2], job_id)
    added = added + 1
  end
end
if redis.call('HSETNX', KEYS[1], '$created_at', ARGV[4]) == 1 then
  redis.call('HSET', KEYS[1], '$source', ARGV[5], '$job_type', ARGV[6])
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], '$total', added)
  redis.call('HINCRBY', KEYS[1], '$queued', added)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[3])
return added
""").substitute(
    created_at=record.CREATED_AT,
    source=record.SOURCE,
    job_type=record.JOB_TYPE,
    total=record.TOTAL,
    queued=JobState.QUEUED.value,
)


@dataclass(frozen=True)
class SubmitReport:
    batch: str
    items: int
    enqueued: int
    skipped_existing: int
    invalid_lines: int
    problems: str = ""


def default_batch_name(path: Path, digest: str) -> str:
    """The file's stem and content hash: the same file resubmitted lands in the same batch."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "batch"
    return f"{stem[:60]}-{digest[:8]}"


def check_batch_name(name: str) -> str:
    if not BATCH_NAME.match(name):
        raise InputError(
            f"batch name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return name


async def submit_file(
    redis: Redis,
    path: Path,
    config: AskqConfig,
    *,
    batch: str | None = None,
    job_type: str | None = None,
    skip_invalid: bool = False,
) -> SubmitReport:
    job_type = job_type or config.default_job_type
    config.job_type(job_type)  # an unknown type is refused before the file is read
    check = check_file(path, context_tokens=config.provider.context_tokens)
    if check.problems and not skip_invalid:
        raise InputError(check.describe() + "\nnothing was enqueued (--skip-invalid enqueues the good lines)")
    if check.items == 0:
        raise InputError(f"{path}: no questions found")
    batch = check_batch_name(batch) if batch else default_batch_name(path, check.digest)
    enqueued = 0
    script = redis.register_script(_ENQUEUE)
    # Scores rise by 0.001 ms per item in input order, so workers take questions in file order.
    first_score_ms = time.time() * 1000
    for chunk in _chunks(read_items(path), config.provider.context_tokens):
        call_keys, args = _chunk_call(chunk, batch, job_type, str(path), config, first_score_ms)
        added = int(await script(keys=call_keys, args=args))
        if added:
            # Idle workers start on the first chunk while the rest of the file is written.
            await wake_workers(redis)
        enqueued += added
        first_score_ms += len(chunk) * 0.001
    invalid = len(check.problems) + check.more_problems
    return SubmitReport(batch, check.items, enqueued, check.items - enqueued, invalid, check.describe())


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
    script_keys = [keys.batch_record(batch), keys.batch_items(batch), keys.QUEUE, keys.BATCHES]
    args: list[str | int | float | bytes] = [
        config.retention.ttl_s,
        f"{score_ms:.3f}",
        batch,
        f"{now:.3f}",
        source,
        job_type,
    ]
    for item in chunk:
        job_id = keys.job_id(batch, item.item_id)
        script_keys += [keys.job_record(job_id), keys.arq_job(job_id)]
        args += [
            job_id,
            _record_json(item, batch, job_type, now),
            arq_job(payload_for(item, batch, job_type), now_ms),
        ]
    return script_keys, args


def _record_json(item: QuestionItem, batch: str, job_type: str, now: float) -> str:
    fields = {
        record.BATCH: batch,
        record.ITEM_ID: item.item_id,
        record.QUESTION: item.question,
        record.JOB_TYPE: job_type,
        record.STATE: JobState.QUEUED.value,
        record.ENQUEUED_AT: f"{now:.3f}",
    }
    if item.custom_id is not None:
        fields[record.CUSTOM_ID] = item.custom_id
    request = request_json(item)
    if request is not None:
        fields[record.REQUEST] = request
    return json.dumps(fields, ensure_ascii=False)
