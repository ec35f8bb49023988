"""Jobs a worker will not run are rejected in one JSON log line, recorded, and never left queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common import keys
from common import record as record_fields
from common.config import AskqConfig, parse_config
from producer.schedules import request_run
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, results, run_burst_schedule_worker


def _arq_job(function: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
    return json.dumps({"t": None, "f": function, "a": args, "k": kwargs or {}, "et": 1})


async def _rejected(redis: Redis) -> dict[str, str]:
    return {
        fields[b"arq_job_id"].decode(): fields[b"reason"].decode()
        for _, fields in await redis.xrange("askq:rejected")
    }


async def test_every_unrunnable_job_is_rejected_and_recorded(
    redis: Redis, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Not JSON, nested too deep, not arq's shape, unknown function, extra arguments, a forged job id:
    each is rejected unrun, its own record failed, another job's record untouched; stderr is JSON."""
    await submit_file(redis, write("q.txt", "one\ntwo\nthree\nfour\nfive\n"), config, batch="b")
    victim = json.loads(await redis.get("arq:job:b:5"))["a"][0]
    stored = {
        "b:1": b"\x80\x04 not json",
        "b:2": ("[" * 100_000).encode(),
        "b:3": json.dumps({"f": "answer"}).encode(),
        "b:4": _arq_job("rm_rf", [{}]).encode(),
        "forged": _arq_job("answer", [victim]).encode(),
        "extra": _arq_job("answer", [victim], {"also": 1}).encode(),
    }
    for job_id, raw in stored.items():
        await redis.set(f"arq:job:{job_id}", raw)
    await redis.zadd("askq:queue", {job_id: 1 for job_id in stored})
    await redis.zrem("askq:queue", "b:5")  # the victim is only named by the forged job

    worker = askq("worker", "--burst")

    assert worker.returncode == 0, worker.stderr
    assert "Traceback" not in worker.stderr
    lines = [json.loads(line) for line in worker.stderr.splitlines()]  # every line is JSON
    assert sum(line["event"] == "rejected job" for line in lines) == len(stored)
    rejected = await _rejected(redis)
    assert rejected["b:1"] == "unreadable job: not a JSON job (UnicodeDecodeError)"
    assert rejected["b:2"] == "unreadable job: not a JSON job (RecursionError)"
    assert rejected["b:3"] == "unreadable job: not an arq job: field 'a' missing or of the wrong type"
    assert rejected["b:4"] == "unknown job function 'rm_rf'"
    assert rejected["forged"] == "the payload names job 'b:5', not the job it is stored as"
    assert rejected["extra"].startswith("expected one argument, the job payload")
    rows = {row.item_id: row for row in await results(redis, "b")}
    assert {item: rows[item].status for item in "1234"} == dict.fromkeys("1234", "failed")
    assert rows["1"].error_code == "invalid_payload"
    assert rows["5"].status == "queued"  # the forged job wrote nothing in the victim's name
    assert sim.stats()["requests_total"] == 0
    assert await redis.zcard("askq:queue") == 0


async def test_a_failed_job_logs_its_error(
    redis: Redis, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """The 'job finished' line of a failed job carries its error and code, so a log alone explains it."""
    await submit_file(redis, write("q.txt", "Refuse me [sim:400]\n"), config, batch="f")
    worker = askq("worker", "--burst", "-v")
    assert worker.returncode == 0, worker.stderr
    finished = [
        line for line in map(json.loads, worker.stderr.splitlines()) if line["event"] == "job finished"
    ]
    assert [(line["state"], line["error_code"]) for line in finished] == [("failed", "400")]
    assert "400" in finished[0]["error"]


async def test_a_forged_run_cannot_write_another_runs_record(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A summarize job whose payload names another run than the one it is stored as is rejected;
    the named run's record is untouched, and a genuine run of the same schedule still runs."""
    body = {"cron": "0 2 * * *", "prompt": "Summarize.", "source": {"kind": "answers"}}
    config = parse_config({"schedules": {"nightly": body}, "files_root": str(tmp_path)})
    genuine = await request_run(redis, config, "nightly")
    victim = dict(json.loads(await redis.get(keys.arq_job(genuine))))
    await redis.set("arq:job:forged", json.dumps(victim))
    await redis.zadd(keys.SCHEDULE_QUEUE, {"forged": 1})

    await run_burst_schedule_worker(config, redis_url)

    rejected = await _rejected(redis)
    assert rejected["forged"] == f"the payload names run {genuine!r}, not the job it is stored as"
    record = await redis.hgetall(keys.job_record(genuine))
    assert record[record_fields.STATE.encode()] == b"succeeded"
