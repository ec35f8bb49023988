"""`askq tail` of knowledge jobs: the sources before the answer, as text, as JSON, from a stored result."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from askq.tail_view import _JobView
from common.config import AskqConfig
from common.events import EventType, StreamEvent
from common.sources import Source
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import askq, keeping_events, on_tty, results, run_burst_worker
from tests.knowledge_helpers import build_base, menu_config, questions_file


async def _answered(redis: Redis, redis_url: str, config: AskqConfig, tmp_path: Path) -> tuple[str, str]:
    """The wifi question answered in batch ``t``: its stored answer and its sources line."""
    await build_base(redis, config)
    path = questions_file(tmp_path / "q.jsonl", ["wifi", "hours"])
    await submit_file(redis, path, config, batch="t", job_type="menu")
    await run_burst_worker(config, redis_url)
    row = next(row for row in await results(redis, "t") if row.item_id == "wifi")
    assert row.answer is not None
    assert row.sources is not None
    line = "sources: " + ", ".join(f"{s.file}#{s.chunk} ({s.score:.2f})" for s in row.sources)
    return row.answer, line


async def test_tail_on_a_terminal_shows_the_sources_before_the_answer(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """One sources line (file#chunk and score, best first) comes before the answer's text."""
    answer, line = await _answered(redis, redis_url, keeping_events(menu_config(tmp_path)), tmp_path)
    assert line.startswith("sources: kb/menu/wifi.md#0 (")
    status, written = on_tty("tail", "t:wifi", env={"NO_COLOR": "1"})
    assert status == 0
    text = written.decode()
    assert text.count(line) == 1
    assert text.index(line) < text.index(answer)


async def test_tail_into_a_pipe_keeps_stdout_the_answer_and_says_the_sources_on_stderr(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Piped, stdout is the answer alone; the sources line goes to stderr (here from the stored result)."""
    answer, line = await _answered(redis, redis_url, menu_config(tmp_path), tmp_path)  # ended: events gone
    shown = askq("tail", "t:wifi")
    assert (shown.returncode, shown.stdout) == (0, answer)
    assert f"{line}\n" in shown.stderr


async def test_tail_json_passes_the_sources_event_and_the_stored_ones(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """--json prints the sources event as logged, before the start; a stored result carries them too."""
    config = keeping_events(menu_config(tmp_path))
    await _answered(redis, redis_url, config, tmp_path)
    lines = [json.loads(line) for line in askq("tail", "t:wifi", "--json").stdout.splitlines()]
    assert [line["type"] for line in lines[:2]] == ["sources", "start"]
    assert lines[0]["sources"][0]["file"] == "kb/menu/wifi.md"
    assert set(lines[0]["sources"][0]) == {"file", "chunk", "score"}


async def test_tail_batch_follows_knowledge_jobs(
    redis: Redis, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """A batch tail, followed or not, reads a log holding sources events and reports every answer."""
    answer, _ = await _answered(redis, redis_url, keeping_events(menu_config(tmp_path)), tmp_path)
    for extra in ([], ["--follow"], ["--json"]):
        shown = askq("tail", "--batch", "t", *extra)
        assert shown.returncode == 0, shown.stderr
        assert "Traceback" not in shown.stderr
    assert answer.splitlines()[0] in askq("tail", "--batch", "t").stdout


def test_a_hostile_file_name_in_the_sources_is_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    """Control characters and markup in a knowledge file's name reach the terminal as visible text."""
    hostile = Source(file="kb/\x1b]8;;http://evil\x07[bold]x.md", chunk=3, score=0.5)
    event = StreamEvent(
        type=EventType.SOURCES, job_id="t:x", seq=1, attempt=1, ts=time.time(), sources=[hostile]
    )
    _JobView(live=True).show(event)
    shown = capsys.readouterr().err
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "sources: kb/␛]8;;http://evil␇[bold]x.md#3 (0.50)" in shown
