"""The JSON job serializer given to arq on both sides: jobs are data, never pickles."""

from __future__ import annotations

import json
from typing import Any


def job_serializer(job: dict[str, Any]) -> bytes:
    return json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()


def job_deserializer(raw: bytes) -> dict[str, Any]:
    job = json.loads(raw)
    if not isinstance(job, dict):
        raise ValueError("an arq job must be a JSON object")
    return job
