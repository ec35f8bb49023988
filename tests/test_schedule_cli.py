"""``askq schedule run`` and ``history`` from the command line, against a running ``askq worker``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common import keys
from common.config import load_config
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import ASKQ, REPO, askq, eventually, run_burst_worker

SCHEDULES = """
schedules:
  nightly:
    cron: "0 2 * * *"
    timezone: Europe/Paris
    source: {{kind: answers}}
    prompt: Summarize the day's questions and answers.
    context_tokens: 1000
    output: {output}
"""


@contextmanager
def askq_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    worker = subprocess.Popen(
        [*ASKQ, "worker"],
        cwd=REPO,
        env={**os.environ, **env},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


async def test_schedule_run_follows_a_map_reduce_run_and_history_lists_it(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path, write: Any
) -> None:
    """`schedule run` prints the run's summary as it streams; `history` and `list` then show its file."""
    jobs_yaml = write("jobs.yaml", SCHEDULES.format(output="out"))
    env = {"ASKQ_CONFIG": str(jobs_yaml)}
    config = load_config(jobs_yaml)
    questions = write("q.txt", "".join(f"question {index} about topic {index}\n" for index in range(120)))
    await submit_file(redis, questions, config, batch="day")
    await run_burst_worker(config, redis_url)

    with askq_worker(env) as worker:
        await eventually(lambda: redis.exists(keys.SCHEDULE_HEALTH), timeout_s=30)
        ran = askq("schedule", "run", "nightly", env=env)
    assert worker.returncode == 0

    assert ran.returncode == 0, ran.stderr
    assert "queued; following it" in ran.stderr
    assert "no worker is serving schedules" not in ran.stderr
    (output,) = (tmp_path / "out" / "nightly").iterdir()
    text = output.read_text(encoding="utf-8")
    assert text.endswith(ran.stdout + "\n")  # the summary call's answer, which ends the file
    assert "input: 120 answers" in text
    history = askq("schedule", "history", "nightly", env=env)
    assert history.returncode == 0, history.stderr
    assert "manual" in history.stdout
    assert "succeeded" in history.stdout
    assert output.name in history.stdout
    listed = askq("schedule", "list", env=env)
    assert "succeeded" in listed.stdout


def test_an_unknown_schedule_is_one_line_naming_the_known_ones(tmp_path: Path, write: Any) -> None:
    """`schedule run` and `history` of a name jobs.yaml lacks exit 1 with the names it has."""
    env = {"ASKQ_CONFIG": str(write("jobs.yaml", SCHEDULES.format(output="out")))}
    for command in ("run", "history"):
        result = askq("schedule", command, "weekly", env=env)
        assert result.returncode == 1
        assert result.stderr == "askq: unknown schedule 'weekly' (jobs.yaml's schedules: nightly)\n"


async def test_a_worker_serving_schedules_says_which_worker_starts_and_stops(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """The questions and the schedules worker of one process each log their own start and stop line."""
    env = {"ASKQ_CONFIG": str(write("jobs.yaml", SCHEDULES.format(output="out")))}
    done = askq("worker", "--burst", env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    for event in ("worker started", "worker stopped"):
        logged = [line.get("serves") for line in lines if line["event"] == event]
        assert sorted(logged, key=str) == ["questions", "schedules"], event
