"""A finished job's record keeps only small fields (a compact listpack); its question, answer and the
like live in its batch's results hash, and every reader still sees the whole job."""

from __future__ import annotations

import copy
import json
from typing import Any

from redis.asyncio import Redis

from common import keys, record
from common.config import AskqConfig
from common.status import JobState
from common.stored_jobs import read_job
from producer.control import cancel_batch
from producer.deletion import delete_batch
from producer.retry import retry_batch
from producer.submit import submit_file
from producer.tail import stored_end
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker

LONG = "Please explain, in a few well chosen sentences, why the sky looks blue on a clear day"
LINES: list[dict[str, Any]] = [
    {"id": "ok", "question": f"{LONG} (first)"},
    {"id": "bad", "question": f"[sim:400] {LONG}"},
    {
        "custom_id": "line-" + "x" * 70,
        "body": {
            "model": "sim-large",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": LONG}],
        },
    },
]
COMPACT = {b"listpack", b"ziplist"}
"""Redis 7 and Redis 6 names of the small-hash encoding."""


async def _submit(redis: Redis, config: AskqConfig, write: Any, lines: list[dict[str, Any]]) -> None:
    path = write("long.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="b")


async def _job_ids(redis: Redis) -> list[str]:
    return [job_id.decode() for job_id in await redis.lrange(keys.batch_items("b"), 0, -1)]


async def _assert_compact(redis: Redis, job_id: str) -> None:
    raw = await redis.hgetall(keys.job_record(job_id))
    fields = {name.decode() for name in raw}
    assert fields, job_id
    assert not fields & {*record.RESULT_FIELDS, *record.ID_FIELDS}, job_id
    assert record.OWNER not in fields, job_id  # whose run it was matters only while it runs
    assert all(raw.values()), job_id  # an empty field reads as missing: not kept
    entry = json.loads(await redis.hget(keys.batch_results("b"), job_id) or "{}")  # type: ignore[misc]  # redis-py types sync and async alike
    assert all(value != "" for name, value in entry.items() if name not in (record.QUESTION, record.ANSWER))
    assert await redis.object("encoding", keys.job_record(job_id)) in COMPACT
    assert await redis.hexists(keys.batch_results("b"), job_id)


async def test_an_ended_record_is_compact_and_its_text_in_the_batch_results(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Succeeded and failed jobs keep no long field in their records; exports still see everything."""
    sim.configure(answer_tokens=60)
    await _submit(redis, config, write, LINES)
    await run_burst_worker(config, redis_url)

    for job_id in await _job_ids(redis):
        await _assert_compact(redis, job_id)
        # The results hash outlives every record of its batch.
        assert await redis.ttl(keys.batch_results("b")) >= await redis.ttl(keys.job_record(job_id)) > 0
    by_id = {result.item_id: result for result in await results(redis, "b")}
    assert by_id["ok"].question == f"{LONG} (first)"
    assert by_id["ok"].answer
    assert len(by_id["ok"].answer) > 100
    assert by_id["ok"].usage
    assert by_id["ok"].usage["completion_tokens"] == 60
    assert by_id["bad"].status == JobState.FAILED.value
    assert by_id["bad"].error
    line = by_id["line-" + "x" * 70]
    assert (line.custom_id, line.model, line.status) == ("line-" + "x" * 70, "sim-large", "succeeded")
    assert (await stored_end(redis, "b:ok")).answer == by_id["ok"].answer  # `askq tail` of a finished job


async def test_a_cancelled_queued_job_is_compact_and_reads_whole(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """Cancelling queued jobs ends them: records compact, question and reason still exported."""
    await _submit(redis, config, write, LINES)
    assert (await cancel_batch(redis, "b", config)).queued == len(LINES)
    for job_id in await _job_ids(redis):
        await _assert_compact(redis, job_id)
    by_id = {result.item_id: result for result in await results(redis, "b")}
    assert by_id["ok"].question == f"{LONG} (first)"
    assert by_id["ok"].status == JobState.CANCELLED.value
    assert by_id["ok"].error


async def test_retry_makes_the_record_whole_and_the_rerun_compact_again(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A retried job runs again with its own question and request, and ends compact once more."""
    # The simulator counts failures per question: each job its own, 4 (all its attempts) then fine.
    line = copy.deepcopy(LINES[2]) | {"custom_id": "line"}
    line["body"]["messages"][1]["content"] = f"[sim:500x4] {LONG} (line)"
    lines = [{"id": "flaky", "question": f"[sim:500x4] {LONG}"}, line]
    await _submit(redis, config, write, lines)
    await run_burst_worker(config, redis_url)
    assert {result.status for result in await results(redis, "b")} == {"failed"}

    assert await retry_batch(redis, "b", config) == 2
    for job_id in await _job_ids(redis):
        fields = await redis.hgetall(keys.job_record(job_id))
        assert fields[b"question"].startswith(b"[sim:500x4]")
        assert b"answer" not in fields
        assert (fields[b"batch"], b"b:" + fields[b"item_id"]) == (b"b", job_id.encode())
        assert not await redis.hexists(keys.batch_results("b"), job_id)
    assert b"request" in await redis.hgetall(keys.job_record("b:line"))
    await run_burst_worker(config, redis_url)

    by_id = {result.item_id: result for result in await results(redis, "b")}
    assert by_id["flaky"].status == by_id["line"].status == "succeeded"
    assert by_id["flaky"].question == f"[sim:500x4] {LONG}"
    assert by_id["flaky"].error is None
    assert by_id["line"].model == "sim-large"  # the line's own request, rebuilt from the results hash
    for job_id in await _job_ids(redis):
        await _assert_compact(redis, job_id)


async def test_a_record_written_before_the_split_reads_as_before(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """An old-layout finished record (every field in the record) is exported, tailed and retried."""
    await _submit(redis, config, write, [{"id": "old", "question": "placeholder"}])
    await cancel_batch(redis, "b", config)
    job_type = await redis.hget(keys.job_record("b:old"), record.JOB_TYPE)
    await redis.delete(keys.batch_results("b"), keys.job_record("b:old"))
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    await redis.hset(
        keys.job_record("b:old"),
        mapping={
            record.BATCH: "b",
            record.ITEM_ID: "old",
            record.JOB_TYPE: job_type,
            record.STATE: JobState.FAILED.value,
            record.QUESTION: f"{LONG} (old)",
            record.ERROR: "provider said no " * 10,
            record.USAGE: json.dumps(usage),
            record.ATTEMPTS: "1",
            record.FINISHED_AT: "1700000000.0",
        },
    )
    [old] = await results(redis, "b")
    assert (old.question, old.status, old.usage) == (f"{LONG} (old)", "failed", usage)
    assert old.error == "provider said no " * 10
    assert (await read_job(redis, "b:old"))[record.QUESTION] == f"{LONG} (old)"
    assert (await stored_end(redis, "b:old")).error == old.error

    await redis.hincrby(keys.batch_record("b"), JobState.CANCELLED.value, -1)
    await redis.hincrby(keys.batch_record("b"), JobState.FAILED.value, 1)
    assert await retry_batch(redis, "b", config) == 1
    await run_burst_worker(config, redis_url)
    [rerun] = await results(redis, "b")
    assert (rerun.question, rerun.status) == (f"{LONG} (old)", "succeeded")
    await _assert_compact(redis, "b:old")


async def test_resubmitting_and_deleting_a_finished_batch(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A resubmit compares with the questions in the results hash; a delete removes the hash."""
    await _submit(redis, config, write, LINES)
    await run_burst_worker(config, redis_url)
    path = write("long.jsonl", "".join(json.dumps(line) + "\n" for line in LINES))
    again = await submit_file(redis, path, config, batch="b")
    assert (again.enqueued, again.conflicting, again.skipped_existing) == (0, 0, len(LINES))

    assert await redis.hlen(keys.batch_results("b")) == len(LINES)
    await delete_batch(redis, "b", config)
    assert not await redis.exists(keys.batch_results("b"))
    assert not await redis.keys("askq:job:*")
