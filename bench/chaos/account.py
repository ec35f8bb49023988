"""What a scenario lost, left stuck or did twice, counted from the results, the records and the log.

- **lost**: items without exactly one result (a result row whose state is final);
- **stuck**: jobs still ``queued`` or ``running`` when the scenario gave up waiting;
- **duplicated**: items with more than one result row, and jobs with two ends under different seqs;
- **seq reused**: a job's seq carrying two different events (a resent entry repeats the same one);
- **counters = results**: the batch's per-state counters equal the results file's rows by state.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from redis.exceptions import RedisError

from bench.chaos.scene import BATCH, Scene
from common import keys
from common.errors import NotFoundError
from common.events import EventType
from common.replay import entry_events
from common.status import JobState
from producer.batches import batch_status
from producer.results import iter_results

ENDS = (EventType.DONE, EventType.FAILED, EventType.CANCELLED)
RESULTS = (EventType.DONE, EventType.FAILED)
"""A cancelled job retried ends twice (cancelled, then its result); a result twice is a duplicate."""


async def account(scene: Scene) -> dict[str, Any]:
    try:
        rows = [row async for row in iter_results(scene.redis, BATCH)]
        status = await batch_status(scene.redis, BATCH, with_job_ids=False, with_latencies=False)
    except (NotFoundError, RedisError):
        return {"lost": scene.jobs, "batch_gone": True}
    final = {state.value for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)}
    per_item = Counter(row.item_id for row in rows if row.status in final)
    by_state = Counter(row.status for row in rows)
    counters = {state.value: count for state, count in status.counts.items() if count}
    reused, ended_twice, without_end, example = await _log_checks(scene, {row.job_id for row in rows})
    return {
        "succeeded": status.counts[JobState.SUCCEEDED],
        "failed": status.counts[JobState.FAILED],
        "lost": scene.jobs - sum(1 for count in per_item.values() if count == 1),
        "stuck": status.counts[JobState.QUEUED] + status.counts[JobState.RUNNING],
        "duplicated": sum(count - 1 for count in per_item.values() if count > 1) + ended_twice,
        "seq_reused": reused,
        "seq_reused_example": example,
        "ends_missing_from_log": without_end,
        "counters_match_results": counters == dict(by_state),
        "failure_reasons": dict(Counter(row.error or "" for row in rows if row.status == "failed")),
    }


async def _log_checks(scene: Scene, job_ids: set[str]) -> tuple[int, int, int, list[str]]:
    """Seqs carrying two different events, jobs ended twice, finished jobs whose end never reached the log."""
    seen: dict[str, dict[int, str]] = defaultdict(dict)
    reused = 0
    example: list[str] = []
    ends: dict[str, set[int]] = defaultdict(set)
    results: dict[str, set[int]] = defaultdict(set)
    for _, fields in await scene.redis.xrange(keys.batch_log(BATCH)):
        for event in entry_events(fields):
            body = json.dumps(event.model_dump(mode="json"), sort_keys=True)
            earlier = seen[event.job_id].setdefault(event.seq, body)
            if earlier != body:
                reused += 1
                example = example or [earlier, body]
            if event.type in ENDS:
                ends[event.job_id].add(event.seq)
            if event.type in RESULTS:
                results[event.job_id].add(event.seq)
    ended_twice = sum(1 for seqs in results.values() if len(seqs) > 1)
    without_end = sum(1 for job_id in job_ids if not ends.get(job_id))
    return reused, ended_twice, without_end, example
