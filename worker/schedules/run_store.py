"""The worker's writes for scheduled runs: the fire-time claim, the run record, the schedule's history."""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from common import keys, record, runs
from common.status import TERMINAL_STATES, JobState
from common.usage import Usage

HISTORY_MAX = 200
"""Runs kept in a schedule's history; their files stay on disk regardless."""

# KEYS: the fire-time claim, the schedule record. ARGV: claimant, fire ms, claim ttl_s.
# A fire time is claimed by one arq job; the same job (arq running it again after its worker was
# lost) may go on, any other may not, even one for the same run.
_CLAIM = f"""
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[2], '{runs.LAST_FIRE_MS}') or '0')
if tonumber(ARGV[2]) > last then redis.call('HSET', KEYS[2], '{runs.LAST_FIRE_MS}', ARGV[2]) end
return 1
"""


class RunStore:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)

    async def claim(self, schedule: str, fire_ms: int, arq_job_id: str) -> bool:
        """True for the one arq job that gets to run this fire time."""
        claim_keys = [keys.schedule_fire(schedule, fire_ms), keys.schedule_record(schedule)]
        return bool(await self._claim(keys=claim_keys, args=[arq_job_id, fire_ms, self._ttl_s]))

    async def schedule_record(self, schedule: str) -> dict[str, str]:
        raw = await self._redis.hgetall(keys.schedule_record(schedule))  # type: ignore[misc]  # redis-py types sync and async alike
        return {name.decode(): value.decode() for name, value in raw.items()}

    async def first_seen(self, schedule: str) -> float:
        """When a worker first saw this schedule (now, if this is the first)."""
        await self._redis.hsetnx(keys.schedule_record(schedule), runs.SINCE, str(time.time()))  # type: ignore[misc]  # as above
        value = await self._redis.hget(keys.schedule_record(schedule), runs.SINCE)  # type: ignore[misc]  # as above
        return float(value)

    async def finished(self, run_id: str) -> bool:
        state = await self._redis.hget(keys.job_record(run_id), record.STATE)  # type: ignore[misc]  # as above
        return state is not None and state.decode() in {terminal.value for terminal in TERMINAL_STATES}

    async def start(self, run_id: str, fields: dict[str, str]) -> None:
        started = {record.STATE: JobState.RUNNING.value, record.STARTED_AT: str(time.time()), **fields}
        schedule = fields[runs.SCHEDULE]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.job_record(run_id), mapping=started)
            pipe.expire(keys.job_record(run_id), self._ttl_s)
            pipe.hset(
                keys.schedule_record(schedule),
                mapping={runs.LAST_RUN: run_id, runs.LAST_STATE: JobState.RUNNING.value},
            )
            await pipe.execute()

    async def finish(
        self,
        run_id: str,
        schedule: str,
        state: JobState,
        fields: dict[str, str],
        usage: Usage,
        window_end: float | None,
    ) -> None:
        """Record the run's end, add it to the history, and (if it succeeded) advance the window."""
        now = time.time()
        ended = {
            record.STATE: state.value,
            record.USAGE: usage.to_json(),
            record.FINISHED_AT: str(now),
            **fields,
        }
        history = {
            "run_id": run_id,
            "state": state.value,
            "trigger": fields.get(runs.TRIGGER, ""),
            "fire_at": fields.get(runs.FIRE_AT, ""),
            "output": fields.get(runs.OUTPUT, ""),
            "error": fields.get(record.ERROR, ""),
            "total_tokens": usage.total_tokens,
            "finished_at": now,
        }
        last: dict[str, Any] = {
            runs.LAST_RUN: run_id,
            runs.LAST_STATE: state.value,
            runs.LAST_OUTPUT: fields.get(runs.OUTPUT, ""),
            runs.LAST_FINISHED_AT: str(now),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.job_record(run_id), mapping=ended)
            pipe.expire(keys.job_record(run_id), self._ttl_s)
            pipe.lpush(keys.schedule_history(schedule), json.dumps(history))
            pipe.ltrim(keys.schedule_history(schedule), 0, HISTORY_MAX - 1)
            pipe.hset(keys.schedule_record(schedule), mapping=last)
            await pipe.execute()
        if state is JobState.SUCCEEDED and window_end is not None:
            await self._advance_window(schedule, window_end)

    async def _advance_window(self, schedule: str, window_end: float) -> None:
        current = await self._redis.hget(keys.schedule_record(schedule), runs.WINDOW_END)  # type: ignore[misc]  # as above
        if current is None or float(current) < window_end:
            await self._redis.hset(keys.schedule_record(schedule), runs.WINDOW_END, str(window_end))  # type: ignore[misc]  # as above
