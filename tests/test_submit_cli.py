"""`askq submit` as a user runs it: standard input, --format, counts, conflicts and the progress bar."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from askq.render import progress_detail
from common.status import JobState
from producer.batches import BatchStatus
from tests.helpers import ASKQ, REPO, askq, on_tty


def _submit_stdin(content: str, *args: str, spool: Path) -> subprocess.CompletedProcess[str]:
    """`askq submit - ARGS` with ``content`` on standard input and temporary files under ``spool``."""
    return subprocess.run(
        [*ASKQ, "submit", "-", *args],
        input=content,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(spool)},
    )


async def test_standard_input_is_read_with_format_and_leaves_no_file(redis: Redis, tmp_path: Path) -> None:
    """`submit - --format txt` enqueues stdin's lines into batch stdin-<hash>; its spool file is gone."""
    spool = tmp_path / "spool"
    spool.mkdir()
    result = _submit_stdin("first question\nsecond question\n", "--format", "txt", spool=spool)
    assert result.returncode == 0, result.stderr
    batch = result.stdout.strip()
    assert re.fullmatch(r"stdin-[0-9a-f]{8}", batch)
    assert result.stderr == f"2 questions: 2 enqueued, 0 already in batch {batch}\n"
    assert await redis.hget(f"askq:batch:{batch}", "source") == b"<stdin>"
    assert await redis.hget(f"askq:job:{batch}:2", "question") == b"second question"
    assert list(spool.iterdir()) == []
    again = _submit_stdin("first question\nsecond question\n", "--format", "txt", spool=spool)
    assert again.stdout.strip() == batch  # the same input lands in the same batch


async def test_standard_input_problems_name_stdin(redis: Redis, tmp_path: Path) -> None:
    """A bad line on stdin is named as <stdin>, nothing is enqueued and the spool file is gone."""
    result = _submit_stdin('id,question\n1,a\n2,"open\n3,c\n', "--format", "csv", spool=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "askq: <stdin>: line 3: a quoted field opened here is never closed\n"
    assert await redis.zcard("askq:queue") == 0
    assert list(tmp_path.iterdir()) == []


def test_standard_input_without_format_is_one_line(tmp_path: Path) -> None:
    """`submit -` without --format says what to add, in one line, and reads nothing."""
    result = _submit_stdin("a question\n", spool=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "askq: reading questions from standard input (-) needs --format jsonl|txt|csv|openai-batch\n"
    )


async def test_format_overrides_the_extension(redis: Redis, write: Any) -> None:
    """--format reads a file whatever its extension: CSV in .data, JSONL in .txt, Batch API lines."""
    csv_file = write("questions.data", "id,question\nx,from csv\n")
    assert askq("submit", str(csv_file), "--format", "csv", "--batch", "c").returncode == 0
    assert await redis.hget("askq:job:c:x", "question") == b"from csv"
    jsonl_file = write("lines.txt", '{"id": "j", "question": "from jsonl"}\n')
    assert askq("submit", str(jsonl_file), "--format", "jsonl", "--batch", "j").returncode == 0
    assert await redis.hget("askq:job:j:j", "question") == b"from jsonl"
    refused = askq("submit", str(jsonl_file), "--format", "openai-batch", "--batch", "b")
    assert refused.returncode == 1
    assert (
        f'{jsonl_file}: line 1: expected an OpenAI Batch API line with "custom_id" and "body"'
        in refused.stderr
    )


async def test_counts_are_singular_for_one(redis: Redis, write: Any) -> None:
    """One question and one bad line are counted as such: '1 question', 'skipped 1 invalid line'."""
    path = write("one.jsonl", '{"question": "only one"}\n{broken\n')
    result = askq("submit", str(path), "--batch", "one", "--skip-invalid")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "skipped 1 invalid line",
        "1 question: 1 enqueued, 0 already in batch one",
    ]


async def test_skip_invalid_with_only_bad_lines_says_why(redis: Redis, write: Any) -> None:
    """--skip-invalid on a file of only bad lines names each reason, then 'no questions found'; exit 1."""
    path = write("bad.jsonl", '{"question": 1}\n{"id": "x"}\n')
    result = askq("submit", str(path), "--batch", "bad", "--skip-invalid")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"askq: {path}: line 1: question must be a string, got int",
        f'{path}: line 2: missing "question" (or an OpenAI Batch API line with "custom_id" and "body")',
        f"{path}: no questions found",
    ]


async def test_a_changed_question_in_the_same_batch_is_reported(redis: Redis, write: Any) -> None:
    """Resubmitting ids with other questions names them (the first 20, and how many), keeps the old
    records, enqueues the rest, and exits 1; --json lists them as conflicting_ids."""
    first = "".join(json.dumps({"id": f"q{n}", "question": f"v1 {n}"}) + "\n" for n in range(30))
    assert askq("submit", str(write("v1.jsonl", first)), "--batch", "v").returncode == 0
    second = "".join(json.dumps({"id": f"q{n}", "question": f"v2 {n}"}) + "\n" for n in range(3))
    second += json.dumps({"id": "new", "question": "fresh"}) + "\n"
    result = askq("submit", str(write("v2.jsonl", second)), "--batch", "v")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "4 questions: 1 enqueued, 0 already in batch v",
        "3 items already in batch v with a different question or request, left as they were "
        "(ids: q0, q1, q2); submit to another --batch to ask them anew",
    ]
    assert await redis.hget("askq:job:v:q1", "question") == b"v1 1"
    changed = "".join(json.dumps({"id": f"q{n}", "question": f"v3 {n}"}) + "\n" for n in range(30))
    as_json = askq("submit", str(write("v3.jsonl", changed)), "--batch", "v", "--json")
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert (document["enqueued"], document["skipped_existing"], document["conflicting"]) == (0, 0, 30)
    assert document["conflicting_ids"] == [f"q{n}" for n in range(20)]
    error = json.loads(as_json.stderr)["error"]  # under --json, stderr is JSON too
    assert error["type"] == "ConflictingItems"
    assert "30 items already in batch v" in error["message"]
    assert "(first ids: q0, q1," in error["message"]


def test_a_line_nested_a_thousand_deep_is_a_line_problem(write: Any) -> None:
    """JSON nested 1,000 deep is named as a bad line, not a RecursionError traceback."""
    path = write("deep.jsonl", '{"question": "q", "metadata": ' + "[" * 1000 + "]" * 1000 + "}\n")
    result = askq("submit", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: line 1: nested too deeply" in result.stderr


async def test_a_terminal_sees_a_progress_bar_and_a_pipe_does_not(redis: Redis, write: Any) -> None:
    """On a terminal the submit draws a bar through the enqueue pass; piped or with --json, none."""
    path = write("many.txt", "".join(f"question {n}\n" for n in range(3000)))
    status, written = on_tty("submit", str(path), "--batch", "tty", env={})
    shown = written.decode(errors="replace")
    assert status == 0
    assert "enqueueing" in shown
    assert "3000/3000" in shown
    assert "3,000 questions: 3,000 enqueued, 0 already in batch tty" in shown
    status, written = on_tty("submit", str(path), "--batch", "tty-json", "--json", env={})
    assert status == 0
    assert b"enqueueing" not in written
    piped = askq("submit", str(path), "--batch", "piped")
    assert piped.stderr == "3,000 questions: 3,000 enqueued, 0 already in batch piped\n"


def test_a_wait_on_a_batch_found_done_shows_no_rate() -> None:
    """Jobs finished before the wait began make no rate: a batch found done showed thousands a second."""
    done = BatchStatus(
        batch="b", total=6, counts={state: 0 for state in JobState} | {JobState.SUCCEEDED: 6},
        prompt_tokens=0, completion_tokens=0, latency_p50_ms=None, latency_p95_ms=None,
        created_at=0.0, source="q.txt", job_type="qa",
    )  # fmt: skip
    started = time.monotonic()
    assert progress_detail(done, started, finished_before=6) == "running 0 · failed 0"
    assert re.fullmatch(
        r"running 0 · failed 0 · [\d.]+/s", progress_detail(done, started - 2, finished_before=2)
    )
