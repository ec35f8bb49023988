"""`askq results -o`: validated before anything is written, replaced whole, private, never through a link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_worker


async def _answered(redis: Redis, redis_url: str, config: AskqConfig, write: Any) -> None:
    await submit_file(redis, write("q.txt", "one\ntwo\n"), config, batch="res")
    await run_burst_worker(config, redis_url)


def test_an_unknown_batch_leaves_an_existing_file_untouched(redis: Redis, tmp_path: Path) -> None:
    """`results TYPO -o existing.jsonl` fails naming the batch, and the file keeps its content."""
    existing = tmp_path / "existing.jsonl"
    existing.write_text("precious\n")
    done = askq("results", "TYPO", "-o", str(existing))
    assert done.returncode == 1
    assert "unknown batch 'TYPO'" in done.stderr
    assert existing.read_text() == "precious\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["existing.jsonl"]  # no temporary left


async def test_the_file_is_replaced_whole_and_private(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any, tmp_path: Path
) -> None:
    """An existing file is replaced by the whole export, with mode 0600 whatever it had."""
    await _answered(redis, redis_url, config, write)
    out = tmp_path / "answers.jsonl"
    out.write_text("old\n")
    out.chmod(0o644)
    done = askq("results", "res", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["succeeded"] * 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "wrote 2 lines" in done.stderr


async def test_a_link_at_the_target_is_refused_not_followed(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any, tmp_path: Path
) -> None:
    """-o naming a symbolic link is refused; neither the link nor what it points to changes."""
    await _answered(redis, redis_url, config, write)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "answers.jsonl"
    link.symlink_to(victim)
    done = askq("results", "res", "-o", str(link))
    assert done.returncode == 1
    assert "is a symbolic link" in done.stderr
    assert victim.read_text() == "keep me\n"
    assert link.is_symlink()


def test_a_missing_folder_or_a_folder_target_is_one_line(redis: Redis, tmp_path: Path) -> None:
    """-o into a folder that does not exist, or onto a folder, exits 1 in one line with no traceback."""
    for target, expected in (
        (tmp_path / "nowhere" / "a.jsonl", "no such folder"),
        (tmp_path, "is a folder; give a file name"),
    ):
        done = askq("results", "res", "-o", str(target))
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1, done.stderr
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "nowhere").exists()


async def test_an_unwritable_folder_is_one_line(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any, tmp_path: Path
) -> None:
    """A folder askq may not write in is reported, not a PermissionError traceback."""
    await _answered(redis, redis_url, config, write)
    if os.geteuid() == 0:
        locked = Path("/proc/askq-results.jsonl")  # root may write anywhere on disk; /proc refuses
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        locked = folder / "a.jsonl"
    done = askq("results", "res", "-o", str(locked))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{locked}: cannot write in" in done.stderr


INERT = "bidi\u202eoverride c1\x9bcsi del\x7f line\u2028sep"


async def test_results_and_worker_logs_spell_terminal_controls_as_escapes(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Answers and provider errors holding C1, bidi or DEL are written as \\u escapes: the same JSON
    value, and nothing a terminal acts on, in `askq results` and in the worker's JSON log lines."""
    questions = [
        {"id": "ok", "question": "[sim:echo]" + INERT},
        {"id": "no", "question": "[sim:echo-error]" + INERT},
    ]
    path = write("q.jsonl", "".join(json.dumps(line) + "\n" for line in questions))
    await submit_file(redis, path, config, batch="inert")
    worker = askq("worker", "--burst")
    assert worker.returncode == 0, worker.stderr

    exported = askq("results", "inert")

    assert exported.returncode == 0, exported.stderr
    for text in (exported.stdout, worker.stderr):
        assert not any(char in text for char in "\u202e\x9b\x7f\u2028"), text
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert rows[0]["answer"] == INERT
    assert INERT in rows[1]["error"]
    assert "\\u202e" in exported.stdout
