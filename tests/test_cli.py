"""The askq command line as a user runs it: real processes, real Redis, the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from common import keys, runs
from tests.conftest import Simulator
from tests.helpers import ASKQ, REPO, askq, eventually, on_tty


def test_unreachable_redis_is_one_line_with_the_password_hidden() -> None:
    """No traceback: one line naming the URL without its password, how to start Redis, and exit 1."""
    result = askq("status", "b", env={"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in result.stderr
    assert "hunter2" not in result.stderr
    assert "redis-server" in result.stderr


def test_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    """A bad jobs.yaml given by ASKQ_CONFIG stops any command with the key path."""
    bad = tmp_path / "jobs.yaml"
    bad.write_text("limits:\n  max_jobs: -1\n")
    result = askq("submit", "askq/examples/questions.jsonl", env={"ASKQ_CONFIG": str(bad)})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}: limits.max_jobs: Input should be greater than or equal to 1" in result.stderr


def test_worker_without_a_provider_says_what_to_set() -> None:
    """askq worker with neither OPENAI_API_KEY nor OPENAI_BASE_URL refuses to start, naming both."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
    result = subprocess.run(
        [*ASKQ, "worker", "--burst"], capture_output=True, text=True, timeout=30, cwd=REPO, env=env
    )
    assert result.returncode == 1
    assert "OPENAI_API_KEY" in result.stderr
    assert "OPENAI_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


async def test_submit_worker_status_results_tail(
    redis: Redis, sim: Simulator, tmp_path: Path, write: Any
) -> None:
    """The README's flow: submit, a burst worker, status, results in both formats, tail of a finished job."""
    questions = write("q.csv", "id,question\nparis,What is the capital of France?\nbad,Break [sim:400]\n")
    submitted = askq("submit", str(questions), "--batch", "cli", "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["enqueued"] == 2

    worker = askq("worker", "--burst", "--concurrency", "4")
    assert worker.returncode == 0, worker.stderr

    status = json.loads(askq("status", "cli", "--json").stdout)
    assert status["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert status["job_ids"] == ["cli:paris", "cli:bad"]
    assert status["latency_ms"]["p50"] > 0

    out = tmp_path / "out.jsonl"
    assert askq("results", "cli", "-o", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["id"], row["status"]) for row in rows] == [("paris", "succeeded"), ("bad", "failed")]
    assert set(rows[0]) == {
        "id",
        "job_id",
        "question",
        "answer",
        "status",
        "error",
        "attempts",
        "usage",
        "finish_reason",
    }

    batch_api = [
        json.loads(line) for line in askq("results", "cli", "--format", "openai-batch").stdout.splitlines()
    ]
    assert batch_api[0]["custom_id"] == "paris"
    assert batch_api[0]["response"]["status_code"] == 200
    assert batch_api[0]["response"]["body"]["choices"][0]["message"]["content"] == rows[0]["answer"]
    assert batch_api[1]["response"]["status_code"] == 400

    tailed = askq("tail", "cli:paris")
    assert tailed.returncode == 0
    assert tailed.stdout.strip() == rows[0]["answer"]
    failed = askq("tail", "cli:bad")
    assert failed.returncode == 1
    assert "HTTP 400" in failed.stderr


async def test_tail_follows_a_live_job_to_its_end(redis: Redis, sim: Simulator, write: Any) -> None:
    """askq tail started before the worker waits, then prints exactly the streamed answer and exits 0."""
    sim.configure(ttft_ms=20, tokens_per_s=500, answer_tokens=80)
    assert askq("submit", str(write("q.txt", "Tell me a story\n")), "--batch", "live").returncode == 0
    tail = subprocess.Popen(
        [*ASKQ, "tail", "live:1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert tail.stdout is not None
    assert json.loads(tail.stdout.readline()) == {"type": "waiting", "job_id": "live:1"}
    assert askq("worker", "--burst").returncode == 0
    out, _ = tail.communicate(timeout=30)
    events = [json.loads(line) for line in out.splitlines()]
    text = "".join(event.get("text", "") for event in events if event["type"] == "delta")
    assert tail.returncode == 0
    assert events[-1]["type"] == "done"
    assert text == json.loads(askq("results", "live").stdout)["answer"]


async def test_unknown_batch_job_and_job_type_are_one_line_errors(redis: Redis, write: Any) -> None:
    """Naming a batch, job or job type that does not exist: exit 1, one line, no traceback."""
    questions = str(write("q.txt", "hi\n"))
    for args, expected in (
        (("submit", questions, "--job", "poem"), "unknown job type 'poem' (jobs.yaml defines: qa)"),
        (("status", "nope"), "unknown batch 'nope'"),
        (("results", "nope"), "unknown batch"),
        (("retry", "nope"), "unknown batch 'nope'"),
        (("cancel", "nope"), "unknown batch 'nope'"),
        (("tail", "nope:1"), "unknown job 'nope:1'"),
    ):
        result = askq(*args)
        assert result.returncode == 1
        assert expected in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


async def test_arq_cli_runs_the_worker_settings(redis: Redis, sim: Simulator, write: Any) -> None:
    """`arq worker.WorkerSettings --burst`, as arq users run it, answers the queue."""
    assert askq("submit", str(write("q.txt", "hello\n")), "--batch", "arq").returncode == 0
    arq = subprocess.run(
        [sys.executable, "-m", "arq", "worker.WorkerSettings", "--burst"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert arq.returncode == 0, arq.stderr
    assert json.loads(askq("results", "arq").stdout)["status"] == "succeeded"


async def test_results_piped_into_head_exits_quietly(redis: Redis, sim: Simulator, write: Any) -> None:
    """A reader that stops early (`| head -1`) gets no traceback and a clean exit."""
    lines = "".join(f"question {i}\n" for i in range(3000))
    assert askq("submit", str(write("q.txt", lines)), "--batch", "pipe").returncode == 0
    pipeline = subprocess.run(
        f"{sys.executable} -m askq.cli results pipe | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert json.loads(pipeline.stdout)["id"] == "1"
    assert "Traceback" not in pipeline.stderr


async def test_submit_wait_json_is_one_document_with_the_final_status(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """submit --wait --json blocks until a running worker finishes the batch, then prints one document."""
    worker = subprocess.Popen(
        [*ASKQ, "worker"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO
    )
    try:
        lines = "question one\nquestion two\nbroken [sim:422]\n"
        result = askq("submit", str(write("q.txt", lines)), "--batch", "waited", "--wait", "--json")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    document = json.loads(result.stdout)
    assert result.returncode == 1  # one job failed
    assert document["batch"] == "waited"
    assert document["enqueued"] == 3
    assert document["status"]["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
    }


async def test_tail_into_a_file_holds_exactly_the_answer_after_a_retry(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """Piped, tail writes only the final attempt's text: no void prefix; the retry shows on stderr."""
    sim.configure(ttft_ms=5, tokens_per_s=2000, answer_tokens=60)
    assert askq("submit", str(write("q.txt", "Cut me [sim:cut]\n")), "--batch", "cut").returncode == 0
    tail = subprocess.Popen(
        [*ASKQ, "tail", "cut:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    assert askq("worker", "--burst").returncode == 0
    out, err = tail.communicate(timeout=30)
    row = json.loads(askq("results", "cut").stdout)
    assert row["attempts"] == 2
    assert tail.returncode == 0
    assert out == row["answer"]
    assert "attempt 1 failed" in err
    assert "discarded" in err


async def test_cancel_then_retry_cancelled_from_the_command_line(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """cancel says what it stopped; tail of a cancelled job says so, exit 1; retry --cancelled resumes."""
    path = write("two.jsonl", '{"id": "a", "question": "one"}\n{"id": "b", "question": "two"}\n')
    assert askq("submit", str(path), "--batch", "c").returncode == 0
    cancelled = askq("cancel", "c")
    assert cancelled.returncode == 0
    assert "2 queued jobs cancelled, 0 running jobs aborting" in cancelled.stderr
    tail = askq("tail", "c:a")
    assert (tail.returncode, tail.stdout) == (1, "")
    assert "cancelled on request (askq cancel, the API or the console)" in tail.stderr
    assert "cancelled" in askq("status", "c").stdout
    plain = askq("retry", "c")
    assert "0 failed jobs of batch c queued again" in plain.stderr
    assert "2 jobs are cancelled: `askq retry c --cancelled` runs them again" in plain.stderr
    resumed = askq("retry", "c", "--cancelled")
    assert "2 failed or cancelled jobs of batch c queued again" in resumed.stderr
    assert askq("worker", "--burst").returncode == 0
    status = json.loads(askq("status", "c", "--json").stdout)
    assert status["counts"]["succeeded"] == 2
    assert status["done"]


async def test_schedule_list_shows_next_fire_in_each_timezone(redis: Redis, tmp_path: Path) -> None:
    """schedule list gives each schedule's next fire at its cron's local time, and its last run."""
    config = tmp_path / "jobs.yaml"
    config.write_text(
        "schedules:\n"
        "  morning:\n    cron: '15 7 * * *'\n    timezone: Asia/Seoul\n    prompt: Summarize\n"
        "    source: {kind: answers}\n"
        "  docs:\n    cron: '30 2 * * 1-5'\n    timezone: America/New_York\n    prompt: Digest\n"
        "    source: {kind: files, glob: 'docs/*.md'}\n"
    )
    last = {runs.LAST_STATE: "succeeded", runs.LAST_OUTPUT: "summaries/x.md"}
    await redis.hset(keys.schedule_record("morning"), mapping=last)
    env = {"ASKQ_CONFIG": str(config)}
    listed = askq("schedule", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    now = datetime.now(UTC)
    for name, zone, hour_minute in (
        ("morning", "Asia/Seoul", (7, 15)),
        ("docs", "America/New_York", (2, 30)),
    ):
        fire = datetime.fromisoformat(rows[name]["next_fire"])
        local = fire.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == hour_minute
        assert fire.utcoffset() == local.utcoffset()
        assert now < fire <= now + timedelta(days=4)
    assert rows["morning"]["last_run"]["state"] == "succeeded"
    assert rows["docs"]["last_run"] is None
    table = askq("schedule", "list", env=env)
    assert "morning" in table.stdout
    assert "succeeded" in table.stdout
    assert "never" in table.stdout


async def test_tail_into_a_file_adds_no_byte_to_the_answer(
    redis: Redis, sim: Simulator, tmp_path: Path, write: Any
) -> None:
    """Into a file, tail writes the stored answer's bytes and nothing else, live or after the end."""
    questions = [
        {"id": "bare", "question": "[sim:echo]no newline at the end"},
        {"id": "ko", "question": "[sim:echo]안녕하세요, 세계.\n두 번째 줄\n"},
    ]
    path = write("q.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in questions))
    assert askq("submit", str(path), "--batch", "nl").returncode == 0
    live = {row["id"]: _tail_into(f"nl:{row['id']}", tmp_path / f"live-{row['id']}") for row in questions}
    assert askq("worker", "--burst").returncode == 0
    codes = {item: tail.wait(timeout=30) for item, tail in live.items()}
    after = {row["id"]: _tail_into(f"nl:{row['id']}", tmp_path / f"after-{row['id']}") for row in questions}
    codes |= {f"after-{item}": tail.wait(timeout=30) for item, tail in after.items()}
    rows = [json.loads(line) for line in askq("results", "nl").stdout.splitlines()]
    answers = {row["id"]: row["answer"] for row in rows}
    assert answers == {"bare": "no newline at the end", "ko": "안녕하세요, 세계.\n두 번째 줄\n"}
    assert set(codes.values()) == {0}
    for item, answer in answers.items():
        assert (tmp_path / f"live-{item}").read_bytes() == answer.encode()
        assert (tmp_path / f"after-{item}").read_bytes() == answer.encode()


def _tail_into(job_id: str, path: Path) -> subprocess.Popen[bytes]:
    """``askq tail JOB_ID > path``, started."""
    with path.open("wb") as out:
        return subprocess.Popen([*ASKQ, "tail", job_id], stdout=out, stderr=subprocess.DEVNULL, cwd=REPO)


async def test_tail_says_when_a_started_job_waits_for_the_provider(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """Between a job's start and its first text, tail says once on stderr that it waits for the provider;
    the answer's bytes are untouched, and a replay of the ended job (no wait) says nothing of it."""
    assert askq("submit", str(write("q.txt", "Slow one [sim:slow=2500]\n")), "--batch", "w").returncode == 0
    tail = subprocess.Popen([*ASKQ, "tail", "w:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert askq("worker", "--burst").returncode == 0
    out, err = tail.communicate(timeout=30)
    answer = json.loads(askq("results", "w").stdout)["answer"]
    assert (tail.returncode, out) == (0, answer.encode())
    assert err.decode().count("waiting for the provider") == 1
    replay = askq("tail", "w:1")
    assert (replay.returncode, replay.stdout) == (0, answer)
    assert "waiting for the provider" not in replay.stderr


async def test_on_a_terminal_the_provider_wait_is_a_status_line_erased_by_the_text(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """On a terminal the wait is a status line on stderr, erased before the answer's first text."""
    assert askq("submit", str(write("q.txt", "Slow one [sim:slow=3000]\n")), "--batch", "s").returncode == 0
    worker = subprocess.Popen([*ASKQ, "worker", "--burst"], stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        await eventually(lambda: _state_is(redis, "s:1", b"running"))
        status, written = on_tty("tail", "s:1", env={"NO_COLOR": "1"})
    finally:
        assert worker.wait(timeout=30) == 0
    answer = json.loads(askq("results", "s").stdout)["answer"]
    assert status == 0
    assert written == f"waiting for the provider…\r\x1b[2K{answer}\n".encode()


async def _state_is(redis: Redis, job_id: str, state: bytes) -> bool:
    return bool(await redis.hget(keys.job_record(job_id), "state") == state)
