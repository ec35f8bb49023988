"""A results download's lines: controls escaped in any text, items in input order across pages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

import producer.batches
from common import record
from common.config import AskqConfig
from common.stored_jobs import read_jobs
from common.untrusted import _JSON_ESCAPES, json_line, json_line_bytes
from producer.results import iter_results
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import run_burst_worker


def test_an_ascii_line_with_del_has_it_escaped() -> None:
    """DEL is ASCII: a line with no other non-ASCII character still gets it as \\u007f."""
    assert json_line('{"a": "x\x7fy"}') == '{"a": "x\\u007fy"}'


def test_a_line_without_controls_is_returned_as_it_is() -> None:
    """Plain ASCII and plain non-ASCII text (accents, CJK, emoji) pass unchanged."""
    for line in ('{"a": "plain"}', '{"a": "café 東京 🙂"}'):
        assert json_line(line) == line


def test_a_non_ascii_line_has_c1_bidi_and_separators_escaped_and_reads_the_same() -> None:
    """C1, bidi overrides and line separators beside ordinary accents: escaped, the same JSON value."""
    value = "café \x9b2J \u202eevil\u202c line\u2028sep del\x7f"
    line = json_line(json.dumps({"a": value}, ensure_ascii=False))
    assert not any(char in line for char in "\x9b\u202e\u202c\u2028\x7f")
    assert "café" in line
    assert json.loads(line) == {"a": value}


def test_json_line_escapes_exactly_the_listed_code_points_in_str_and_bytes() -> None:
    """ASCII, Latin-1, general punctuation (every listed code point is below U+2100) and a few more
    beside ASCII and non-ASCII text: escaped when listed, left as they are otherwise."""
    for code in (*range(0x2100), 0x3000, 0xFEFF, 0x1F642):
        for line in (f'{{"a": "x{chr(code)}y"}}', f'{{"a": "é{chr(code)}"}}'):
            expected = line.translate(_JSON_ESCAPES)
            assert json_line(line) == expected, hex(code)
            assert json_line_bytes(line.encode()) == expected.encode(), hex(code)
    assert json_line('{"a": "\x7f"}') == '{"a": "\\u007f"}'


async def test_results_come_in_input_order_across_many_pages(
    redis: Redis, config: AskqConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 3 ids (the next read while one is used): every item once, in the file's order."""
    monkeypatch.setattr(producer.batches, "PAGE_ITEMS", 3)
    path = tmp_path / "q.txt"
    path.write_text("".join(f"Question {n}?\n" for n in range(11)), encoding="utf-8")
    await submit_file(redis, path, config, batch="paged")
    results = [result async for result in iter_results(redis, "paged")]
    assert [result.question for result in results] == [f"Question {n}?" for n in range(11)]


async def test_results_stopped_early_leave_no_read_running(
    redis: Redis, config: AskqConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader stopping after one item (a client gone) closes the walk: no read left running."""
    monkeypatch.setattr(producer.batches, "PAGE_ITEMS", 2)
    path = tmp_path / "q.txt"
    path.write_text("".join(f"Question {n}?\n" for n in range(7)), encoding="utf-8")
    await submit_file(redis, path, config, batch="early")
    walk = iter_results(redis, "early")
    first = await anext(walk)
    await walk.aclose()
    assert first.question == "Question 0?"
    assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []
    assert await redis.ping()


async def test_jobs_of_two_batches_read_together_come_in_the_order_asked(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, tmp_path: Path
) -> None:
    """One read of a finished batch's jobs and a queued one's, interleaved: each job its own fields."""
    for batch in ("done", "waiting"):
        path = tmp_path / f"{batch}.txt"
        path.write_text("".join(f"{batch} question {n}?\n" for n in range(3)), encoding="utf-8")
        await submit_file(redis, path, config, batch=batch)
        if batch == "done":
            await run_burst_worker(config, redis_url)
    asked = ["waiting:2", "done:1", "waiting:1", "done:3", "gone:1"]
    read = await read_jobs(redis, asked)
    assert [fields.get(record.QUESTION) for fields in read] == [
        "waiting question 1?",
        "done question 0?",
        "waiting question 0?",
        "done question 2?",
        None,
    ]
    assert [fields.get(record.STATE) for fields in read[:4]] == ["queued", "succeeded", "queued", "succeeded"]
    assert read[1][record.ANSWER]
