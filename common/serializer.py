"""The JSON job serializer given to arq on both sides: jobs are data, never pickles.

orjson writes them: ``askq submit`` serializes one job per question, and the standard library's
encoder was a fifth of its time. What orjson refuses (an integer beyond 64 bits in a question's
parameters) goes through the standard library instead. Both write the same JSON for what a job can
hold: question files with NaN or Infinity, where they would differ, are refused when read.

arq also serializes a run's outcome with it, and a run that failed before it started (its job
expired: another worker finished it) carries the exception: that is written as its text.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def job_serializer(job: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(job, default=_exception_text)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(job, separators=(",", ":"), ensure_ascii=False, default=_exception_text).encode()


def _exception_text(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise TypeError(f"{type(value).__name__} is not JSON")


def job_deserializer(raw: bytes) -> dict[str, Any]:
    # The standard library reads: one small job per run is cheap, and orjson would read an integer
    # beyond 64 bits as a float, changing it.
    job = json.loads(raw)
    if not isinstance(job, dict):
        raise ValueError("an arq job must be a JSON object")
    return job
