"""Question files: every bad line is named with its file and line, and nothing is enqueued."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from common.errors import InputError
from common.payload import JobPayload
from producer.items import QuestionItem
from producer.readers import read_items
from producer.submit import submit_file


async def _refused(redis: Redis, config: AskqConfig, path: Any) -> str:
    with pytest.raises(InputError) as caught:
        await submit_file(redis, path, config, batch="bad")
    assert await redis.zcard("askq:queue") == 0
    assert not await redis.exists("askq:batch:bad")
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.jsonl", '{"question": "ok"}\n{"question": "ok", \n', "a.jsonl: line 2: not valid JSON"),
        ("b.jsonl", '{"question": "ok"}\n{"id": 7}\n', 'b.jsonl: line 2: missing "question"'),
        ("c.jsonl", '{"question": "  "}\n', "c.jsonl: line 1: question is empty"),
        ("d.jsonl", '{"question": 42}\n', "d.jsonl: line 1: question must be a string, got int"),
        ("e.jsonl", '["a list"]\n', "e.jsonl: line 1: expected a JSON object, got list"),
        (
            "f.jsonl",
            '{"id": "x", "question": "a"}\n{"id": "x", "question": "b"}\n',
            "f.jsonl: line 2: duplicate id 'x' (first on line 1)",
        ),
        ("g.csv", "title,body\nx,y\n", "g.csv: line 1: the header has no 'question' column"),
        ("h.csv", "id,question\n1,fine\n2\n", "h.csv: line 3: expected 2 columns"),
        ("i.jsonl", "", "i.jsonl: no questions found"),
        ("blank.txt", "\n  \n\t\n", "blank.txt: no questions found"),
        ("header-only.csv", "id,question\n", "header-only.csv: no questions found"),
        ("j.docx", "question", "unknown file type '.docx'"),
        (
            "k.jsonl",
            '{"custom_id": "a", "body": {"model": "m", "messages": []}}\n',
            "k.jsonl: line 1: body.messages must be a non-empty list",
        ),
        (
            "l.jsonl",
            '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}], "tools": []}}\n',
            "l.jsonl: line 1: body.tools is not supported",
        ),
        (
            "m.jsonl",
            '{"custom_id": "a", "url": "/v1/embeddings", "body": {}}\n',
            'm.jsonl: line 1: url must be "/v1/chat/completions"',
        ),
        (
            "n.jsonl",
            '{"custom_id": "a", "body": {"messages": [], "temperature": NaN}}\n',
            "n.jsonl: line 1: not valid JSON (NaN is not a JSON number)",
        ),
    ],
)
async def test_bad_lines_are_named_and_nothing_is_enqueued(
    redis: Redis, config: AskqConfig, write: Any, name: str, content: str, expected: str
) -> None:
    """Each malformed file is refused with its name, the line and the problem, and enqueues nothing."""
    message = await _refused(redis, config, write(name, content))
    assert expected in message


async def test_binary_and_non_utf8_files_are_refused(redis: Redis, config: AskqConfig, write: Any) -> None:
    """A NUL byte or invalid UTF-8 is pinned to its line."""
    assert "line 2: binary data" in await _refused(redis, config, write("bin.txt", b"fine\nbad\x00\n"))
    assert "line 3: not UTF-8 text" in await _refused(redis, config, write("latin.txt", b"a\nb\n\xe9t\xe9\n"))


async def test_every_bad_line_is_reported_not_just_the_first(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """All bad lines are listed in one message, so a user fixes the file in one go."""
    lines = ['{"question": "ok"}', "{oops", '{"question": ""}', '{"question": "fine"}', "[]"]
    message = await _refused(redis, config, write("many.jsonl", "\n".join(lines) + "\n"))
    assert [line.split(":")[1].strip() for line in message.splitlines()[:3]] == ["line 2", "line 3", "line 5"]
    assert "nothing was enqueued" in message


async def test_skip_invalid_enqueues_the_good_lines(redis: Redis, config: AskqConfig, write: Any) -> None:
    """--skip-invalid enqueues the valid questions and reports the rest."""
    path = write("mixed.jsonl", '{"question": "ok"}\n{bad\n{"question": "also ok"}\n')
    report = await submit_file(redis, path, config, batch="mixed", skip_invalid=True)
    assert (report.items, report.enqueued, report.invalid_lines) == (2, 2, 1)
    assert "line 2: not valid JSON" in report.problems
    assert await redis.zcard("askq:queue") == 2


async def test_a_question_beyond_the_models_context_is_refused(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """A question surely longer than provider.context_tokens is a bad line; --skip-invalid leaves it out."""
    small = config.model_copy(
        update={"provider": config.provider.model_copy(update={"context_tokens": 1000})}
    )
    lines = [{"id": "fits", "question": "word " * 700}, {"id": "huge", "question": "word " * 5000}]
    path = write("long.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    message = await _refused(redis, small, path)
    assert (
        "long.jsonl: line 2: the question is about 6,250 tokens, beyond the model's context of 1,000"
        in message
    )
    report = await submit_file(redis, path, small, batch="long", skip_invalid=True)
    assert (report.enqueued, report.invalid_lines) == (1, 1)
    assert await redis.exists("askq:job:long:fits")
    assert not await redis.exists("askq:job:long:huge")


async def test_batch_names_are_checked(redis: Redis, config: AskqConfig, write: Any) -> None:
    """A batch name with spaces or colons is refused before anything is written."""
    with pytest.raises(InputError, match="batch name 'my batch'"):
        await submit_file(redis, write("q.txt", "hi\n"), config, batch="my batch")


async def test_unknown_job_type_is_refused(redis: Redis, config: AskqConfig, write: Any) -> None:
    """--job naming a type jobs.yaml lacks is refused and enqueues nothing."""
    with pytest.raises(Exception, match="unknown job type 'poem'"):
        await submit_file(redis, write("q.txt", "hi\n"), config, job_type="poem")
    assert await redis.zcard("askq:queue") == 0


async def test_csv_with_quoted_multiline_question(redis: Redis, config: AskqConfig, write: Any) -> None:
    """A quoted CSV field spanning lines is one question, with the next row's line number right."""
    path = write("q.csv", 'id,question\na,"first line\nsecond line"\nb,\n')
    message = await _refused(redis, config, path)
    assert "q.csv: line 4: question is empty" in message


async def test_payload_is_json_never_pickle(redis: Redis, config: AskqConfig, write: Any) -> None:
    """The arq job written for a question is plain JSON naming the answer function."""
    await submit_file(
        redis, write("q.jsonl", json.dumps({"id": "a", "question": "hi"}) + "\n"), config, batch="j"
    )
    job = json.loads(await redis.get("arq:job:j:a"))
    assert job["f"] == "answer"
    assert job["a"][0]["question"] == "hi"
    assert job["a"][0]["job_id"] == "j:a"


async def test_the_written_payload_is_the_schema_s_own(redis: Redis, config: AskqConfig, write: Any) -> None:
    """Submit writes payloads without building the model; each is exactly JobPayload's own dump."""
    line = {
        "custom_id": "req-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
            "temperature": 0.2,
        },
    }
    path = write("q.jsonl", json.dumps({"id": 7, "question": "plain"}) + "\n" + json.dumps(line) + "\n")
    await submit_file(redis, path, config, batch="p")
    for item in read_items(path):
        assert isinstance(item, QuestionItem)
        written = json.loads(await redis.get(f"arq:job:p:{item.item_id}"))["a"][0]
        assert written == JobPayload.model_validate(written).model_dump(mode="json")
        assert written["job_id"] == f"p:{item.item_id}"
        assert written["job_type"] == config.default_job_type
        assert JobPayload.model_validate(written).question == item.question
