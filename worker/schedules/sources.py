"""What a scheduled run reads: answers finished in its window, or files changed since the last run.

A source reads without changing anything. What it read is only marked as read (the ``files``
digests) by ``commit``, called once the run has succeeded, so a failed run loses nothing: the next
run reads the same files again. An ``answers`` window is advanced the same way, by the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from redis.asyncio import Redis

from common import keys, record
from common.confine import confined_matches
from common.schedules import AnswersSource, FilesSource
from common.status import JobState
from common.stored_jobs import read_jobs

log = structlog.get_logger(__name__)

PAGE = 500


async def _nothing_to_commit() -> None:
    return None


@dataclass
class Collected:
    items: list[str]
    """One text per answer or file, each labelled with where it came from."""
    counts: dict[str, int]
    """What the header reports, e.g. {"answers": 312, "failed, left out": 4}."""
    commit: Callable[[], Awaitable[None]] = field(default=_nothing_to_commit)


async def collect_answers(redis: Redis, source: AnswersSource, start: datetime, end: datetime) -> Collected:
    """Succeeded jobs that finished in (start, end], filtered by batch and job type."""
    job_ids = await redis.zrangebyscore(keys.FINISHED, f"({start.timestamp()}", end.timestamp())
    items: list[str] = []
    counts = {"answers": 0, "failed or cancelled, left out": 0, "other batches or job types": 0}
    wanted = [record.STATE, record.BATCH, record.JOB_TYPE, record.QUESTION, record.ANSWER]
    for first in range(0, len(job_ids), PAGE):
        page = job_ids[first : first + PAGE]
        jobs = await read_jobs(redis, [job_id.decode() for job_id in page])
        for job_id, fields in zip(page, jobs, strict=True):
            state, batch, job_type, question, answer = (fields.get(name, "") for name in wanted)
            if (source.batch and batch != source.batch) or (source.job_type and job_type != source.job_type):
                counts["other batches or job types"] += 1
            elif state != JobState.SUCCEEDED.value:
                counts["failed or cancelled, left out"] += 1
            else:
                counts["answers"] += 1
                items.append(f"Question ({job_id.decode()}): {question}\nAnswer: {answer}")
    return Collected(items, {name: count for name, count in counts.items() if count or name == "answers"})


async def collect_files(redis: Redis, schedule_name: str, source: FilesSource, root: Path) -> Collected:
    """Files matching the glob under ``root`` whose content changed since the last successful run (all
    with ``all``); a match whose real path lies outside ``root`` (a link out of it) is skipped."""
    stored = {
        path.decode(): digest.decode()
        for path, digest in (await redis.hgetall(keys.schedule_files(schedule_name))).items()  # type: ignore[misc]  # redis-py types sync and async alike
    }
    found, outside = await asyncio.to_thread(_read_files, root, source.glob)
    if outside:
        log.warning("skipped files outside the root folder", root=str(root), paths=outside[:20])
    items: list[str] = []
    counts = {"files changed": 0, "unchanged": 0, "not text, left out": 0, "outside the root, skipped": 0}
    counts["outside the root, skipped"] = len(outside)
    digests: dict[str, str] = {}
    for path, content in found:
        digest = hashlib.sha256(content).hexdigest()
        digests[path] = digest
        if not source.all and stored.get(path) == digest:
            counts["unchanged"] += 1
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            counts["not text, left out"] += 1
            continue
        counts["files changed"] += 1
        items.append(f"File {path}:\n{text}")

    async def commit() -> None:
        # The whole set is replaced: a deleted file is forgotten, and counts as new if it returns.
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.schedule_files(schedule_name))
            if digests:
                pipe.hset(keys.schedule_files(schedule_name), mapping=digests)
            await pipe.execute()

    if source.all:
        counts = {"files": counts.pop("files changed"), **counts}
        del counts["unchanged"]
    return Collected(items, {name: n for name, n in counts.items() if n or name.startswith("files")}, commit)


def _read_files(root: Path, pattern: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(relative path, content) of each file the glob matches under ``root`` (walked as
    ``common.confine.confined_matches`` says), and the matches whose real path is outside it. Paths
    are relative to the root, as the model and the header see them."""
    found: list[tuple[str, bytes]] = []
    matches, outside = confined_matches(root, pattern)
    for path, real in matches:
        # The resolved path, opened without following a link swapped in since it was resolved.
        descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            found.append((path, handle.read()))
    return found, outside
