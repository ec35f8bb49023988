"""A stored job in two parts, and the one reading that puts them together.

A job's record (``keys.job_record``) holds everything while the job is queued or running. When it
ends, its bulky fields (``record.RESULT_FIELDS``: question, request, custom id, answer, error,
usage, model) move, in the same Lua call, into its batch's results hash (``keys.batch_results``) as
one JSON object under the job id, and its batch and item id (``record.ID_FIELDS``) go: the job id
spells them. The record keeps only small values, so Redis stores it as a listpack (tens of bytes of
overhead) rather than a hashtable (60-80 bytes a field). ``askq retry`` moves the fields back
before the job runs again.

Every reader of a job goes through ``read_jobs``: it reads both parts in one MULTI, so a retry
moving the fields back in between is never half seen, and a record written before the split (its
fields all in the record) reads as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from string import Template

import orjson
from redis.asyncio import Redis

from common import keys, record
from common.reconnect import is_out_of_memory

_RESULT_FIELDS_LUA = "{" + ", ".join(f"['{name}'] = true" for name in record.RESULT_FIELDS) + "}"
_ID_FIELDS_LUA = "{" + ", ".join(f"['{name}'] = true" for name in record.ID_FIELDS) + "}"
# An empty answer is an answer, and an empty question a question: kept even when empty.
_ALWAYS_KEPT_LUA = f"{{['{record.QUESTION}'] = true, ['{record.ANSWER}'] = true}}"

COMPACT_LUA = Template("""
-- Moves an ended job's bulky fields from its record `rec` into the results hash `results` (field
-- `job_id`, one JSON object), refreshing the hash's expiry to `ttl` s so that it outlives every
-- record of the batch; its batch and item id, which the job id spells, are dropped. The record is
-- written anew: a hash that once held a long value stays a hashtable after HDEL, and only a new
-- one is a listpack again. Its expiry is kept.
local function compact(rec, results, job_id, ttl)
  local bulky, ids, always = $bulky, $ids, $always
  local all = redis.call('HGETALL', rec)
  local moved, kept, any = {}, {}, false
  for i = 1, #all, 2 do
    if bulky[all[i]] then
      -- An empty error, model or the like is left out: a reader takes a missing field as empty.
      if all[i + 1] ~= '' or always[all[i]] then moved[all[i]] = all[i + 1] end
      any = true
    elseif ids[all[i]] or all[i] == '$owner' or all[i + 1] == '' then
      -- The id parts are spelled by the job id; the run's owner matters only while it runs; an
      -- empty field reads as missing.
      any = true
    else
      kept[#kept + 1] = all[i]
      kept[#kept + 1] = all[i + 1]
    end
  end
  if not any then return end
  local pttl = redis.call('PTTL', rec)
  redis.call('HSET', results, job_id, cjson.encode(moved))
  redis.call('EXPIRE', results, ttl)
  redis.call('DEL', rec)
  redis.call('HSET', rec, unpack(kept))
  if pttl > 0 then redis.call('PEXPIRE', rec, pttl) end
end
""").substitute(bulky=_RESULT_FIELDS_LUA, ids=_ID_FIELDS_LUA, always=_ALWAYS_KEPT_LUA, owner=record.OWNER)

RESTORE_LUA = Template("""
-- Moves a job's bulky fields back from the results hash into its record `rec`, with its batch and
-- item id from `job_id` (a retry: the job is live again and its record whole). A record that was
-- never split is left as it is.
local function restore(rec, results, job_id)
  local entry = redis.call('HGET', results, job_id)
  if not entry then return end
  local colon = string.find(job_id, ':', 1, true)
  local fields = {'$batch', string.sub(job_id, 1, colon - 1), '$item_id', string.sub(job_id, colon + 1)}
  for name, value in pairs(cjson.decode(entry)) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('HSET', rec, unpack(fields))
  redis.call('HDEL', results, job_id)
end
""").substitute(batch=record.BATCH, item_id=record.ITEM_ID)

STORED_LUA = """
-- The stored value of field `name` of a job, from its record or, once it ended, its results entry.
local function stored(rec, results, job_id, name)
  local value = redis.call('HGET', rec, name)
  if value then return value end
  local entry = redis.call('HGET', results, job_id)
  if not entry then return false end
  return cjson.decode(entry)[name] or false
end
"""


def merged(job_id: str, record_json: bytes, entry: bytes | None) -> dict[str, str]:
    """A job's fields from its record's hash, as ``_RECORD_JSON`` writes it, and its results entry (None
    when it has none)."""
    fields: dict[str, str] = orjson.loads(record_json)
    if fields and entry is not None:
        # orjson: a tenth of a results download was the standard library decoding these entries.
        fields.update(orjson.loads(entry))
        fields[record.BATCH], fields[record.ITEM_ID] = keys.split_job_id(job_id)
    return fields


# A record's fields as one JSON object (``{}`` when it is gone): for the reader, one value to parse
# in C, where the fields one by one were a dozen objects to make and decode (a third of a results
# download). An object, not the flat HGETALL reply encoded as is: that costs Redis 1 µs a job less
# but the reader, which a download waits on, 0.9 µs more to pair the names and values.
_RECORD_JSON = """
local function record_json(key)
  local flat = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  return cjson.encode(fields)
end
"""

# KEYS: per job, its record and its batch's results hash. ARGV: the job ids. Returns per job its
# record (record_json) and its results entry (or false). For a Redis at maxmemory, which refuses
# every command queued in a MULTI but runs a script that writes nothing.
_READ_JOBS = (
    _RECORD_JSON
    + """
local out = {}
for i = 1, #ARGV do
  out[#out + 1] = record_json(KEYS[2 * i - 1])
  out[#out + 1] = redis.call('HGET', KEYS[2 * i], ARGV[i])
end
return out
"""
)


# KEYS: job records. Returns each one's record_json. In a MULTI beside the HMGET of the results
# entries: a record is a few short fields, which Lua copies cheaply, where an answer it would copy twice.
_READ_RECORDS = (
    _RECORD_JSON
    + """
local out = {}
for i = 1, #KEYS do out[i] = record_json(KEYS[i]) end
return out
"""
)


async def read_jobs(redis: Redis, job_ids: Sequence[str]) -> list[dict[str, str]]:
    """Each job's fields, in order, in one round trip; empty for a job whose record is gone."""
    if not job_ids:
        return []
    by_results: dict[str, list[int]] = {}  # a results hash (one per batch) -> its jobs' places
    for place, job_id in enumerate(job_ids):
        by_results.setdefault(keys.batch_results(keys.split_job_id(job_id)[0]), []).append(place)
    try:
        # One MULTI of a script and an HMGET a batch: as atomic as _READ_JOBS, with a reply or two
        # to read instead of two a job (redis-py reads each under a timeout: a third of a download),
        # and a fifth of Redis's CPU (_READ_JOBS copies each answer into Lua and out again).
        async with redis.pipeline(transaction=True) as pipe:
            records = [keys.job_record(job_id) for job_id in job_ids]
            pipe.eval(_READ_RECORDS, len(records), *records)
            for results, places in by_results.items():
                pipe.hmget(results, [job_ids[place] for place in places])
            record_jsons, *entry_lists = await pipe.execute()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        return await _read_jobs_in_script(redis, job_ids)
    entries: list[bytes | None] = [None] * len(job_ids)
    for places, found in zip(by_results.values(), entry_lists, strict=True):
        for place, entry in zip(places, found, strict=True):
            entries[place] = entry
    return [
        merged(job_id, record_json, entry)
        for job_id, record_json, entry in zip(job_ids, record_jsons, entries, strict=True)
    ]


async def _read_jobs_in_script(redis: Redis, job_ids: Sequence[str]) -> list[dict[str, str]]:
    """read_jobs on a Redis at maxmemory, which refuses every command queued in a MULTI."""
    call_keys: list[str] = []
    for job_id in job_ids:
        call_keys += [keys.job_record(job_id), keys.batch_results(keys.split_job_id(job_id)[0])]
    replies = await redis.register_script(_READ_JOBS)(keys=call_keys, args=list(job_ids))
    return [merged(job_id, replies[2 * i], replies[2 * i + 1]) for i, job_id in enumerate(job_ids)]


async def read_job(redis: Redis, job_id: str) -> dict[str, str]:
    """One job's fields; empty when its record is gone."""
    return (await read_jobs(redis, [job_id]))[0]
