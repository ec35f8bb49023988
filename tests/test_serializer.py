"""The arq job serializer: plain JSON both ways, whatever a question's parameters hold."""

from __future__ import annotations

import json

import pytest
from arq.jobs import serialize_result
from arq.worker import JobExecutionFailed

from common.serializer import job_deserializer, job_serializer

JOB = {"t": None, "f": "answer", "a": [{"question": "Café? 東京?", "params": {"seed": 7}}], "k": {}, "et": 1}


def test_a_job_is_compact_utf8_json_any_json_reader_takes() -> None:
    """Written without spaces or escapes, and read back by the standard library as it was."""
    raw = job_serializer(JOB)
    assert "東京".encode() in raw
    assert b", " not in raw
    assert json.loads(raw) == JOB
    assert job_deserializer(raw) == JOB


def test_numbers_beyond_64_bits_round_trip() -> None:
    """A parameter such as a 100-bit seed is written and read back exactly, not refused."""
    job = {**JOB, "a": [{"params": {"seed": 2**100 + 1, "scale": -(2**70) - 1}}]}
    assert job_deserializer(job_serializer(job)) == job


def test_a_job_that_is_not_an_object_is_refused() -> None:
    """A JSON list where a job belongs is an error that says what was expected."""
    with pytest.raises(ValueError, match="must be a JSON object"):
        job_deserializer(b"[1, 2]")


def test_a_failed_run_s_exception_is_written_as_its_text() -> None:
    """arq's outcome of a job that expired before it ran holds an exception: written as text."""
    raw = serialize_result(
        *("answer", (), {}, 1, 0, False, JobExecutionFailed("job expired"), 0, 1, "q:answer"),
        serializer=job_serializer,
        queue_name="q",
        job_id="q1",
    )
    assert raw is not None
    assert json.loads(raw)["r"] == "JobExecutionFailed: job expired"
