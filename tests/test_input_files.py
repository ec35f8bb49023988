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
        (
            "inf.jsonl",
            '{"question": "q", "temperature": 1e400}\n',
            "inf.jsonl: line 1: not valid JSON (1e400 is too large a number)",
        ),
        (
            "digits.jsonl",
            '{"id": ' + "9" * 5000 + ', "question": "q"}\n',
            "digits.jsonl: line 1: not valid JSON (a number of more than 4,300 digits)",
        ),
        (
            "typo.jsonl",
            '{"question": "ok"}\n{"question": "q", "temprature": 0.2}\n',
            "typo.jsonl: line 2: unknown key 'temprature' (askq reads: id, question, model, system, "
            "frequency_penalty,",
        ),
        (
            "extra.jsonl",
            '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}, "question": "y"}\n',
            "extra.jsonl: line 1: unknown key 'question' (an OpenAI Batch API line has: custom_id, method, "
            "url, body)",
        ),
        (
            "get.jsonl",
            '{"custom_id": "a", "method": "GET", "body": {"messages": [{"role": "user", "content": "x"}]}}\n',
            "get.jsonl: line 1: method must be \"POST\", got 'GET'",
        ),
        (
            "sys.jsonl",
            '{"question": "q", "system": ""}\n',
            "sys.jsonl: line 1: system is empty",
        ),
        (
            "deep.jsonl",
            '{"question": "q", "metadata": ' + "[" * 1000 + "]" * 1000 + "}\n",
            "deep.jsonl: line 1: nested too deeply",
        ),
        (
            "deeper.jsonl",
            '{"question": "q", "metadata": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}\n",
            "deeper.jsonl: line 1: nested too deeply (more than 64 levels, in metadata)",
        ),
        (
            "surrogate.jsonl",
            '{"question": "ok \\ud83d\\ude00"}\n{"question": "half \\ud800 a pair"}\n',
            "surrogate.jsonl: line 2: question holds a lone surrogate (\\ud800), which is not text",
        ),
        (
            "surrogate-id.jsonl",
            '{"id": "x\\udfff", "question": "q"}\n',
            "surrogate-id.jsonl: line 1: id holds a lone surrogate (\\udfff), which is not text",
        ),
        (
            "esc.jsonl",
            '{"id": "red\\u001b[31m", "question": "q"}\n',
            "esc.jsonl: line 1: id must not hold control characters (U+001B)",
        ),
        ("c1.jsonl", '{"id": "a\\u009bb", "question": "q"}\n', "line 1: id must not hold control characters"),
        (
            "del.jsonl",
            '{"id": "a\\u007fb", "question": "q"}\n',
            "line 1: id must not hold control characters",
        ),
        (
            "esc.csv",
            "id,question\nok,fine\nbad\x1b[2J,q\n",
            "esc.csv: line 3: id must not hold control characters (U+001B)",
        ),
        (
            "esc-custom.jsonl",
            '{"custom_id": "\\u0007", "body": {"messages": [{"role": "user", "content": "x"}]}}\n',
            "esc-custom.jsonl: line 1: custom_id must not hold control characters (U+0007)",
        ),
        (
            "cr.csv",
            "id,question\n1,a\rb\n2,c\n",
            "cr.csv: line 2: unreadable CSV (a carriage return inside an unquoted field: CR line endings?)",
        ),
        (
            "cr.txt",
            "first\nsecond\rthird\rfourth\n",
            "cr.txt: line 2: a carriage return inside the line",
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
        "long.jsonl: line 2: the question is about 5,000 tokens, beyond the model's context of 1,000"
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


def _rows(first: int, last: int) -> str:
    return "".join(f"{n},question {n}\n" for n in range(first, last + 1))


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('id,question\n1,fine\n2,"never closed\n' + _rows(3, 1000), 3),
        ('id,question,note\n1,"two\nlines","opened on the row\'s second line\n' + _rows(3, 50), 3),
        ("id,question\n" + _rows(1, 5) + '6,"the last row\n', 7),
        ("id,question\n" + _rows(1, 5) + '6,"no newline at the end', 7),
        ('id,"question\n1,q\n', 1),
    ],
)
async def test_a_csv_quote_never_closed_is_refused_at_the_line_it_opened(
    redis: Redis, config: AskqConfig, write: Any, content: str, line: int
) -> None:
    """A quoted CSV field still open at the end of the file swallowed the rows after it: the file is
    refused, naming where the quote opened, even with --skip-invalid."""
    path = write("open.csv", content)
    message = await _refused(redis, config, path)
    assert message == f"{path}: line {line}: a quoted field opened here is never closed"
    with pytest.raises(InputError, match=f"line {line}: a quoted field opened here is never closed"):
        await submit_file(redis, path, config, batch="bad", skip_invalid=True)
    assert not await redis.exists("askq:batch:bad")


async def test_a_csv_quote_never_closed_in_a_large_file_is_refused(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """An open quote whose field outgrows the CSV field limit is refused, naming the row it began on."""
    path = write("big.csv", 'id,question\n1,fine\n2,"never closed\n' + _rows(3, 20_000))
    message = await _refused(redis, config, path)
    assert message.startswith(f"{path}: line 3: a field of this row runs past 131,072 characters")


async def test_legal_csv_quoting_still_reads(redis: Redis, config: AskqConfig, write: Any) -> None:
    """Multi-line quoted fields, doubled quotes, a quoted last row without a final newline all read."""
    path = write("ok.csv", 'id,question\na,"one\n\ntwo"\nb,"say ""hi"""\nc,"last\nrow"')
    items = list(read_items(path))
    assert [(i.line, i.item_id, i.question) for i in items if isinstance(i, QuestionItem)] == [
        (4, "a", "one\n\ntwo"),
        (5, "b", 'say "hi"'),
        (7, "c", "last\nrow"),
    ]


async def test_rows_after_an_unreadable_csv_row_are_still_read(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """One unreadable CSV row is one bad line: --skip-invalid still enqueues every row after it."""
    path = write("cr.csv", "id,question\na,first\nb,stray\rreturn\nc,third\nd,fourth\n")
    report = await submit_file(redis, path, config, batch="cr", skip_invalid=True)
    assert (report.items, report.enqueued, report.invalid_lines) == (3, 3, 1)
    assert [await redis.hget(f"askq:job:cr:{item}", "question") for item in "acd"] == [
        b"first",
        b"third",
        b"fourth",
    ]


async def test_skip_invalid_with_no_good_line_names_every_reason(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """--skip-invalid on a file of only bad lines says why each was bad, not just 'no questions found'."""
    path = write("allbad.jsonl", '{oops\n{"question": ""}\n')
    with pytest.raises(InputError) as caught:
        await submit_file(redis, path, config, batch="bad", skip_invalid=True)
    assert str(caught.value).splitlines() == [
        f"{path}: line 1: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}: line 2: question is empty",
        f"{path}: no questions found",
    ]
    assert await redis.zcard("askq:queue") == 0


async def test_a_plain_line_s_model_system_and_parameters_are_carried(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """A plain line's model, system prompt and request parameters reach the job payload and the record."""
    lines = [
        {"id": "[/]", "question": "Why?", "model": "m-1", "system": "Be brief.", "temperature": 0.3},
        {"id": "b", "question": "How?", "max_tokens": 5},
    ]
    path = write("p.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="p")
    first = JobPayload.model_validate(json.loads(await redis.get("arq:job:p:[/]"))["a"][0])
    assert first.model == "m-1"
    assert first.params == {"temperature": 0.3}
    assert [(m.role, m.content) for m in first.messages or ()] == [("system", "Be brief."), ("user", "Why?")]
    second = JobPayload.model_validate(json.loads(await redis.get("arq:job:p:b"))["a"][0])
    assert (second.messages, second.model, second.params) == (None, None, {"max_tokens": 5})
    assert json.loads(await redis.hget("askq:job:p:[/]", "request"))["model"] == "m-1"


async def test_format_openai_batch_refuses_plain_lines(redis: Redis, config: AskqConfig, write: Any) -> None:
    """With the openai-batch format every line must be a Batch API request line."""
    path = write("q.data", '{"question": "plain"}\n')
    with pytest.raises(
        InputError, match='line 1: expected an OpenAI Batch API line with "custom_id" and "body"'
    ):
        await submit_file(redis, path, config, batch="bad", fmt="openai-batch")
    report = await submit_file(redis, path, config, batch="good", fmt="jsonl")
    assert report.enqueued == 1


async def test_resubmitting_a_changed_question_reports_the_conflict(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """An id already in the batch with another question or request is reported, and its record is kept."""
    first = [{"id": "a", "question": "one"}, {"id": "b", "question": "two"}, {"id": "c", "question": "three"}]
    await submit_file(
        redis, write("v1.jsonl", "".join(json.dumps(x) + "\n" for x in first)), config, batch="v"
    )
    second = [
        {"id": "a", "question": "one"},
        {"id": "b", "question": "two, changed"},
        {"id": "c", "question": "three", "model": "other"},
        {"id": "d", "question": "four"},
    ]
    path = write("v2.jsonl", "".join(json.dumps(x) + "\n" for x in second))
    report = await submit_file(redis, path, config, batch="v")
    assert (report.items, report.enqueued, report.skipped_existing) == (4, 1, 1)
    assert (report.conflicting, report.conflicting_ids) == (2, ["b", "c"])
    assert await redis.hget("askq:job:v:b", "question") == b"two"
    assert not await redis.hexists("askq:job:v:c", "request")
    assert await redis.hget("askq:batch:v", "total") == b"4"


def test_a_spreadsheet_space_in_an_id_is_named(write: Any) -> None:
    """A no-break space in a CSV id is named as such, not blamed on the id's length."""
    path = write("q.csv", "id,question\nitem\u00a01,What?\n")
    [problem] = list(read_items(path))
    assert not isinstance(problem, QuestionItem)
    assert problem.message == "id holds U+00A0 (no-break space); use plain spaces, on one line"
