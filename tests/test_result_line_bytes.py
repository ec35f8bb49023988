"""A results line written as bytes (producer.result_lines) is, byte for byte, json.dumps of the line's
document with json_line's escapes, for every combination of stored fields."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import orjson
import pytest

from common.sources import sources_json
from common.untrusted import json_line
from producer.result_lines import RESULT_FORMATS, openai_usage, result_line
from producer.results import Result, result_from_record

TEXTS = (
    "plain",
    "",
    'quote " backslash \\ slash / tab \t newline \n nul \x00 esc \x1b',
    "café 東京 🙂 — “dashes and quotes”",
    "del\x7f c1\x9b bidi\u202eevil\u202c iso\u2066x\u2069 line\u2028sep para\u2029",
)
USAGES = (
    None,
    "",
    '{"prompt_tokens":30,"completion_tokens":200,"total_tokens":230}',
    '{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"estimated":true}',
    '{"prompt_tokens":30,"completion_tokens":2,"total_tokens":32,"cached_tokens":16}',
    '{"prompt_tokens":1e16,"cost":0.5,"details":{"cached":[1,2]},"big":1180591620717411303424}',
    '{"odd key \\u2028é":-7}',
    '{"completion_tokens":2,"prompt_tokens":3,"total_tokens":5}',
    '{"prompt_tokens":true,"completion_tokens":2,"total_tokens":5}',
)
SOURCES = (
    None,
    "[]",
    '[{"file": "kb/münü\u202e.md", "chunk": 3, "score": 0.123456}, {"file": "a", "chunk": 0, "score": 1}]',
)
STATES = ("succeeded", "failed", "cancelled", "queued", "running", None)
ERRORS = ((None, None), ("", ""), ("provider said 429", "429"), ("timed out", "timeout"))


def reference_line(job_id: str, fields: dict[str, str], fmt: str) -> bytes:
    """The line as askq wrote it before result_lines: json.dumps of a dict built from a Result."""
    result = result_from_record(job_id, fields)
    document = openai_batch_document(result) if fmt == "openai-batch" else result.to_json()
    return (json_line(json.dumps(document, ensure_ascii=False)) + "\n").encode()


def openai_batch_document(result: Result) -> dict[str, Any]:
    """The OpenAI Batch API output line of a result, written plainly (the format in docs/results.md)."""
    custom_id = result.custom_id or result.item_id
    line_id = "batch_req_" + hashlib.sha256(result.job_id.encode()).hexdigest()[:24]
    line: dict[str, Any]
    if result.status == "succeeded":
        message = {"role": "assistant", "content": result.answer}
        body = {
            "id": "chatcmpl-" + line_id.removeprefix("batch_req_"),
            "object": "chat.completion",
            "created": int(result.finished_at or 0),
            "model": result.model,
            "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason or "stop"}],
            "usage": openai_usage(result.usage),
        }
        response = {"status_code": 200, "request_id": line_id, "body": body}
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    elif (code := result.error_code or result.status).isdigit():
        error_body = {"error": {"message": result.error, "type": "askq_error", "code": None}}
        response = {"status_code": int(code), "request_id": line_id, "body": error_body}
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
    else:
        error = {"code": code, "message": result.error or f"not finished: {result.status}"}
        line = {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
    if result.sources is not None:
        line["sources"] = json.loads(sources_json(result.sources))
    return line


def stored(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


def combinations() -> list[tuple[str, dict[str, str]]]:
    """Fields of ended, live and expired jobs, compacted or not, with every text, usage, error, source."""
    cases = []
    for state, text, usage, (error, code), sources in itertools.product(
        STATES, TEXTS, USAGES, ERRORS, SOURCES
    ):
        if state is None:  # an expired job: its record is gone, its fields read empty
            cases.append((f"b:{text}", {}))
            continue
        fields = stored(
            state=state,
            item_id=text or "7",
            question=text,
            answer=text if state != "running" else None,
            error=error,
            error_code=code,
            attempts="2",
            usage=usage,
            model=text or None,
            finish_reason="length" if text == "plain" else None,
            custom_id=text if code else None,
            finished_at="1796053410.538" if state in ("succeeded", "failed") else None,
            sources=sources,
        )
        cases.append((f"b{text}:{text or 7}", fields))
    return cases


@pytest.mark.parametrize("fmt", RESULT_FORMATS)
def test_every_combination_of_fields_writes_the_reference_bytes(fmt: str) -> None:
    """Succeeded, failed, cancelled, live and expired jobs with controls, non-ASCII text, odd usage and
    sources: result_line's bytes equal json.dumps of the line's document, escaped."""
    cases = combinations()
    assert len(cases) > 2000
    for job_id, fields in cases:
        assert result_line(job_id, fields, fmt) == reference_line(job_id, fields, fmt), (job_id, fields)


def test_orjson_escapes_every_code_point_as_json_dumps_does() -> None:
    """What result_lines relies on: orjson's string is json.dumps(ensure_ascii=False)'s, in UTF-8."""
    for code in itertools.chain(range(0xD800), range(0xE000, 0x110000)):
        text = chr(code)
        assert orjson.dumps(text) == json.dumps(text, ensure_ascii=False).encode(), hex(code)


def test_cached_prompt_tokens_are_nested_as_openai_writes_them() -> None:
    """askq's line keeps cached_tokens flat, as stored; the Batch API line nests it under
    prompt_tokens_details, as OpenAI's chat completion usage does."""
    usage = '{"prompt_tokens":30,"completion_tokens":2,"total_tokens":32,"cached_tokens":16}'
    fields = stored(state="succeeded", item_id="a", question="q", answer="a", usage=usage, attempts="1")
    ours = json.loads(result_line("b:a", fields, "jsonl"))
    theirs = json.loads(result_line("b:a", fields, "openai-batch"))
    assert ours["usage"]["cached_tokens"] == 16
    assert theirs["response"]["body"]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 2,
        "total_tokens": 32,
        "prompt_tokens_details": {"cached_tokens": 16},
    }
