"""One line of a results file, written as bytes straight from a job's stored fields.

``askq results``, ``GET /api/batches/{batch}/results`` and the Batch API's output files all write
these lines. A line is, byte for byte, ``json.dumps(document, ensure_ascii=False)`` of the document
below, with ``common.untrusted.json_line``'s escapes and a newline. It is filled into a template of
its shape, each string encoded by orjson, where ``json.dumps`` of a dict built for the line (and a
``Result`` built for the dict) was two thirds of the server's CPU in a download (docs/performance.md).
orjson escapes a string as ``json.dumps(ensure_ascii=False)`` does (tests/test_result_line_bytes.py
checks every code point, and every line shape against ``json.dumps``).

jsonl: ``{"id", "job_id", "question", "answer" (null unless succeeded), "status", "error", "attempts",
"usage", "finish_reason"}``, and ``"sources"`` last for a job that retrieved knowledge.

openai-batch: the Batch API's output line (``{"id", "custom_id", "response", "error"}``), with a
knowledge job's sources as an extra top-level key, which readers of that format ignore.
"""

from __future__ import annotations

import hashlib
from _json import encode_basestring, make_encoder
from typing import Any, NoReturn

import orjson

from common import record
from common.sources import parse_sources, sources_json
from common.status import JobState
from common.untrusted import json_line_bytes

RESULT_FORMATS = ("jsonl", "openai-batch")
EXPIRED = "expired"
"""The status of a job whose record is gone (its fields read empty)."""
_SUCCEEDED = JobState.SUCCEEDED.value
_dumps = orjson.dumps

# %b: a JSON value's bytes, %d: an int. The last %b is a knowledge job's sources (or nothing).
_JSONL = (
    b'{"id": %b, "job_id": %b, "question": %b, "answer": %b, "status": %b, "error": %b, "attempts": %d, '
    b'"usage": %b, "finish_reason": %b%b}\n'
)
_ANSWERED = (
    b'{"id": "batch_req_%b", "custom_id": %b, "response": {"status_code": 200, "request_id": "batch_req_%b", '
    b'"body": {"id": "chatcmpl-%b", "object": "chat.completion", "created": %d, "model": %b, "choices": '
    b'[{"index": 0, "message": {"role": "assistant", "content": %b}, "finish_reason": %b}], "usage": %b}}, '
    b'"error": null%b}\n'
)
_REFUSED = (
    b'{"id": "batch_req_%b", "custom_id": %b, "response": {"status_code": %d, "request_id": "batch_req_%b", '
    b'"body": {"error": {"message": %b, "type": "askq_error", "code": null}}}, "error": null%b}\n'
)
_UNANSWERED = (
    b'{"id": "batch_req_%b", "custom_id": %b, "response": null, "error": {"code": %b, "message": %b}%b}\n'
)
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE = b'{"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}'


def _unserializable(value: object) -> NoReturn:
    raise TypeError(f"{type(value).__name__} is not JSON")


_STANDARD_JSON = make_encoder(None, _unserializable, encode_basestring, None, ": ", ", ", False, False, True)
"""The C encoder behind ``json.dumps(ensure_ascii=False)``, made once: ``json.dumps`` makes one a call,
which took longer than encoding a usage."""


def line_status(fields: dict[str, str]) -> str:
    """The job's status as its line says it."""
    return fields.get(record.STATE, EXPIRED)


def result_line(job_id: str, fields: dict[str, str], fmt: str = "jsonl") -> bytes:
    """The job's line in ``fmt``, newline included, from its fields as ``read_jobs`` reads them."""
    line = _openai_batch_line(job_id, fields) if fmt == "openai-batch" else _jsonl_line(job_id, fields)
    # C1, bidi and line-separator characters as \u escapes: the same JSON, inert on a terminal.
    return json_line_bytes(line)


def _jsonl_line(job_id: str, fields: dict[str, str]) -> bytes:
    state = line_status(fields)
    return _JSONL % (
        _dumps(fields.get(record.ITEM_ID, "")),
        _dumps(job_id),
        _dumps(fields.get(record.QUESTION, "")),
        _dumps(fields.get(record.ANSWER) if state == _SUCCEEDED else None),
        _dumps(state),
        _dumps(fields.get(record.ERROR) or None),
        int(fields.get(record.ATTEMPTS, 0)),
        _usage(fields),
        _dumps(fields.get(record.FINISH_REASON) or None),
        _sources(fields),
    )


def _openai_batch_line(job_id: str, fields: dict[str, str]) -> bytes:
    state = line_status(fields)
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:24].encode()
    custom_id = _dumps(fields.get(record.CUSTOM_ID) or fields.get(record.ITEM_ID, ""))
    if state == _SUCCEEDED:
        finished_at = fields.get(record.FINISHED_AT)
        return _ANSWERED % (
            digest,
            custom_id,
            digest,
            digest,
            int(float(finished_at)) if finished_at else 0,
            _dumps(fields.get(record.MODEL) or None),
            _dumps(fields.get(record.ANSWER)),
            _dumps(fields.get(record.FINISH_REASON) or "stop"),
            _openai_usage(fields),
            _sources(fields),
        )
    error = fields.get(record.ERROR) or None
    code = fields.get(record.ERROR_CODE) or state
    if code.isdigit():  # an HTTP status from the provider: a response, as the Batch API writes one
        return _REFUSED % (digest, custom_id, int(code), digest, _dumps(error), _sources(fields))
    message = error or f"not finished: {state}"
    return _UNANSWERED % (digest, custom_id, _dumps(code), _dumps(message), _sources(fields))


def _usage(fields: dict[str, str]) -> bytes:
    stored = fields.get(record.USAGE)
    if not stored:
        return b"null"
    usage: Any = orjson.loads(stored)
    # The shape askq stores (common.usage.Usage) by a template; any other by the standard library's
    # encoder, not orjson's, which spells some floats otherwise (1e16, 1e+16).
    if type(usage) is dict and tuple(usage) == _USAGE_KEYS:
        prompt, completion, total = usage.values()
        if type(prompt) is type(completion) is type(total) is int:
            return _USAGE % (prompt, completion, total)
    return "".join(_STANDARD_JSON(usage, 0)).encode()


def _openai_usage(fields: dict[str, str]) -> bytes:
    """The usage in OpenAI's shape: cached prompt tokens (stored flat) under ``prompt_tokens_details``."""
    stored = fields.get(record.USAGE)
    if not stored or '"cached_tokens"' not in stored:
        return _usage(fields)
    return "".join(_STANDARD_JSON(openai_usage(orjson.loads(stored)), 0)).encode()


def openai_usage(usage: Any) -> Any:
    """A stored usage as OpenAI's ``usage`` object: ``cached_tokens`` under ``prompt_tokens_details``."""
    if type(usage) is not dict or "cached_tokens" not in usage:
        return usage
    shaped = {name: value for name, value in usage.items() if name != "cached_tokens"}
    shaped["prompt_tokens_details"] = {"cached_tokens": usage["cached_tokens"]}
    return shaped


def _sources(fields: dict[str, str]) -> bytes:
    """The ``"sources"`` key, for a job of a type with knowledge only: other lines stay as they were."""
    stored = fields.get(record.SOURCES)
    # What json.dumps writes of the list sources_json wrote: sources_json's own text.
    return b', "sources": ' + sources_json(parse_sources(stored)).encode() if stored else b""
