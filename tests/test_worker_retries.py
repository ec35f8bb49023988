"""The worker's retry policy against real provider faults injected by the simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis
from structlog.testing import capture_logs

from common.config import AskqConfig, parse_config
from common.errors import RetryableProviderError
from common.events import EventType, StreamEvent
from producer.retry import retry_batch
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import eventually, logged_events, results, run_burst_worker
from worker.answering.admission import Admission
from worker.answering.gate import ProviderGate


async def _run_one(question: str, redis: Redis, redis_url: str, config: AskqConfig, write: Any) -> Any:
    path = write("one.jsonl", json.dumps({"id": "only", "question": question}) + "\n")
    await submit_file(redis, path, config, batch="faults")
    await run_burst_worker(config, redis_url)
    [row] = await results(redis, "faults")
    return row


async def test_429_then_success_waits_at_least_retry_after(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Two 429s are retried, each after at least the provider's Retry-After, and the third attempt wins."""
    question = "Rate limited? [sim:429@0.3x2]"
    row = await _run_one(question, redis, redis_url, config, write)
    assert row.status == "succeeded"
    assert row.attempts == 3
    assert sim.stats()["attempts"][question] == 3
    latency_ms = float((await redis.hget("askq:job:faults:only", "latency_ms")).decode())
    assert latency_ms >= 600  # two waits of Retry-After 0.3 s, not the 0.01 s backoff


async def test_5xx_and_cut_streams_are_retried(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """500s and a stream cut mid-way are retried until an attempt succeeds; a 503 between them (the
    server saying it is away) is asked again without spending an attempt."""
    question = "Flaky provider [sim:500,503,500,cut]"
    row = await _run_one(question, redis, redis_url, config, write)
    assert row.status == "succeeded"
    assert row.attempts == 4
    assert sim.stats()["attempts"][question] == 5


async def test_error_in_stream_and_missing_finish_reason_are_not_answers(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """An error object in a 200 stream and a stream that ends without finish_reason fail the attempt."""
    question = "Half answers [sim:error,nofinish]"
    row = await _run_one(question, redis, redis_url, config, write)
    assert row.status == "succeeded"
    assert row.attempts == 3
    assert "Half answers" in row.answer


MALFORMED = "the provider sent a malformed stream line (not JSON): "


async def test_a_malformed_stream_line_is_retried_like_a_cut_stream(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A data: line that is not JSON fails the attempt retryably, named in the retry event, no traceback."""
    question = "Mangled by a proxy [sim:badline]"
    with capture_logs() as logs:
        row = await _run_one(question, redis, redis_url, config, write)
    assert (row.status, row.attempts, sim.stats()["attempts"][question]) == ("succeeded", 2, 2)
    assert "Mangled by a proxy" in row.answer
    [retry] = [event for event in await logged_events(redis, row.job_id) if event.type is EventType.RETRY]
    assert retry.attempt == 1
    assert retry.error is not None
    assert retry.error.startswith(MALFORMED + 'data: {"id":"chatcmpl-')
    assert len(retry.error) < len(MALFORMED) + 100  # the provider's line is quoted short
    assert not [entry for entry in logs if entry.get("exc_info") or entry["event"] == "job crashed"]


async def test_a_malformed_line_on_every_attempt_fails_the_job_with_that_reason(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A provider whose every stream has a malformed line is tried retry.attempts times, then failed."""
    question = "Always mangled [sim:badlinex99]"
    with capture_logs() as logs:
        row = await _run_one(question, redis, redis_url, config, write)
    assert (row.status, row.attempts) == ("failed", config.retry.attempts)
    assert sim.stats()["attempts"][question] == config.retry.attempts
    assert row.error.startswith(MALFORMED)
    assert not row.error.startswith("internal error")
    assert not [entry for entry in logs if entry.get("exc_info") or entry["event"] == "job crashed"]


async def test_400_is_attempted_once_with_the_providers_message(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A 400 is not retried; the job fails with the provider's own message."""
    question = "Bad request [sim:400]"
    row = await _run_one(question, redis, redis_url, config, write)
    assert row.status == "failed"
    assert row.attempts == 1
    assert sim.stats()["attempts"][question] == 1
    assert row.error.startswith("HTTP 400: ")
    assert "simulated" in row.error.lower()


async def test_401_names_the_api_key(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A 401 fails at once and tells the user to check OPENAI_API_KEY."""
    row = await _run_one("Who am I? [sim:401]", redis, redis_url, config, write)
    assert row.status == "failed"
    assert row.attempts == 1
    assert "check OPENAI_API_KEY" in row.error


async def test_401_stops_the_rest_of_the_batch_until_retry(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """After a 401 the batch's other jobs fail without a call; once the key is fixed, retry resumes them."""
    sim.configure(require_api_key="the-right-key")
    config = parse_config({"limits": {"concurrency": 2, "max_jobs": 4}})
    lines = "".join(json.dumps({"id": str(n), "question": f"q{n}"}) + "\n" for n in range(20))
    await submit_file(redis, write("many.jsonl", lines), config, batch="auth")
    await run_burst_worker(config, redis_url)

    rows = await results(redis, "auth")
    assert {row.status for row in rows} == {"failed"}
    assert all("check OPENAI_API_KEY" in (row.error or "") for row in rows)
    assert sum("not sent" in (row.error or "") for row in rows) >= 20 - 2
    assert sim.stats()["requests_total"] <= 2  # only the calls already in flight at the first 401

    sim.configure(require_api_key=None)
    assert await retry_batch(redis, "auth", config) == 20
    await run_burst_worker(config, redis_url)
    assert {row.status for row in await results(redis, "auth")} == {"succeeded"}


async def test_a_429_holds_off_every_worker_for_its_retry_after(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """After one 429 with Retry-After 1 s, a second worker's fresh jobs wait it out instead of calling."""
    await submit_file(
        redis, write("a.jsonl", '{"id": "a", "question": "[sim:429@1x1] a"}\n'), config, batch="a"
    )
    first = asyncio.create_task(run_burst_worker(config, redis_url))

    async def refused() -> StreamEvent | None:
        return next(
            (event for event in await logged_events(redis, "a:a") if event.type is EventType.RETRY), None
        )

    await eventually(lambda: _is_set(refused()))
    refused_at = (await refused()).ts  # type: ignore[union-attr]
    others = "".join(json.dumps({"id": str(n), "question": f"fresh {n}"}) + "\n" for n in range(5))
    await submit_file(redis, write("b.jsonl", others), config, batch="b")
    await asyncio.gather(first, run_burst_worker(config, redis_url))

    starts = [
        event.ts
        for n in range(5)
        for event in await logged_events(redis, f"b:{n}")
        if event.type is EventType.START
    ]
    assert len(starts) == 5
    assert min(starts) >= refused_at + 0.9  # Retry-After 1 s, less the clock's rounding
    assert sim.stats()["responses_by_status"].get("429") == 1
    assert {row.status for row in await results(redis, "b")} == {"succeeded"}


async def _is_set(value: Awaitable[object]) -> bool:
    return await value is not None


async def test_exhausted_retries_fail_the_job_not_the_batch(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """After the last attempt the job is failed with its error, and the other questions still succeed."""
    # A 500, not a 503: a server that says it is unavailable is waited for (an outage), not retried.
    lines = [
        {"id": "doomed", "question": "Always failing [sim:500x99]"},
        {"id": "fine", "question": "Easy one"},
    ]
    path = write("two.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="mixed")
    await run_burst_worker(config, redis_url)
    doomed, fine = await results(redis, "mixed")
    assert doomed.status == "failed"
    assert doomed.attempts == config.retry.attempts
    assert doomed.error.startswith("HTTP 500")
    assert fine.status == "succeeded"


async def test_semaphore_bounds_provider_calls_in_flight(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """With concurrency 3 and 12 jobs held at once, the provider never sees more than 3 calls in flight."""
    config = parse_config({"limits": {"concurrency": 3, "max_jobs": 12}})
    sim.configure(ttft_ms=60, tokens_per_s=400, answer_tokens=10)
    path = write("many.txt", "".join(f"question {i}\n" for i in range(24)))
    await submit_file(redis, path, config, batch="bounded")
    await run_burst_worker(config, redis_url)
    stats = sim.stats()
    assert stats["requests_total"] == 24
    assert stats["max_in_flight"] == 3


async def test_backoff_does_not_hold_a_semaphore_slot(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """With one slot, a job sleeping in a 1 s backoff lets another job be answered meanwhile."""
    retry = {"initial_wait_s": 1.0, "max_wait_s": 1.0, "jitter_s": 0}
    config = parse_config({"limits": {"concurrency": 1, "max_jobs": 4}, "retry": retry})
    lines = [{"id": "slow", "question": "Wait for me [sim:500]"}, {"id": "quick", "question": "Go ahead"}]
    path = write("two.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="backoff")
    await run_burst_worker(config, redis_url)
    slow, quick = await results(redis, "backoff")
    assert slow.status == quick.status == "succeeded"
    assert quick.finished_at is not None
    assert slow.finished_at is not None
    assert quick.finished_at < slow.finished_at
    assert sim.stats()["max_in_flight"] == 1


async def test_a_payload_not_of_our_schema_is_rejected_unexecuted(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A payload not of askq's schema, or not JSON, never reaches the provider; refusals are recorded."""
    await redis.set(
        "arq:job:evil", json.dumps({"t": None, "f": "answer", "a": [{"cmd": "rm -rf /"}], "k": {}, "et": 1})
    )
    await redis.set("arq:job:junk", b"\x80\x04not json")
    await redis.zadd("askq:queue", {"evil": 1, "junk": 2})
    # A real job whose stored payload was tampered with: its record is failed with the reason.
    await submit_file(redis, write("one.txt", "a fine question\n"), config, batch="t")
    tampered = json.loads(await redis.get("arq:job:t:1"))
    tampered["a"][0]["params"] = {"tools": []}
    await redis.set("arq:job:t:1", json.dumps(tampered))

    await run_burst_worker(config, redis_url)
    assert sim.stats()["requests_total"] == 0
    assert await redis.zcard("askq:queue") == 0
    rejected = {
        fields[b"arq_job_id"].decode(): fields[b"reason"].decode()
        for _, fields in await redis.xrange("askq:rejected")
    }
    assert rejected["evil"].startswith("invalid job payload: job_id: Field required")
    assert rejected["t:1"] == "invalid job payload: Value error, unsupported request parameters: tools"
    [row] = await results(redis, "t")
    assert (row.status, row.error_code, row.error) == ("failed", "invalid_payload", rejected["t:1"])


async def test_a_job_over_its_timeout_is_recorded_as_failed(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """A job whose answer streams longer than limits.job_timeout_s ends failed with a timeout error, never
    stuck running (the wait for its first byte is the provider's queue, not counted)."""
    config = parse_config({"limits": {"job_timeout_s": 0.3}})
    sim.configure(tokens_per_s=5, answer_tokens=24)  # about 5 s of streaming
    row = await _run_one("Too slow", redis, redis_url, config, write)
    assert row.status == "failed"
    assert row.error == "job timed out after 0.3 s"


async def test_the_provider_gate_stays_open_while_redis_is_away() -> None:
    """With Redis unreachable (a restart), the gate lets the attempt call rather than fail the job."""
    unreachable = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    gate = ProviderGate(unreachable, "b", "provider:443", parse_config({}))
    assert await gate.admit() == Admission()
    await gate.refused(RetryableProviderError("HTTP 429", status_code=429, retry_after_s=1.0))
    await unreachable.aclose()


async def test_retries_and_failed_jobs_are_warnings_and_successes_info(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A retry and a job that ends failed are logged as warnings; a job that succeeds stays at info."""
    lines = [{"id": "flaky", "question": "Flaky [sim:500]"}, {"id": "refused", "question": "No [sim:400]"}]
    path = write("two.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch="levels")
    with capture_logs() as logs:
        await run_burst_worker(config, redis_url)
    levels = sorted(
        (entry["event"], entry.get("state", ""), entry["log_level"])
        for entry in logs
        if entry["event"] in ("retrying", "job finished")
    )
    assert levels == [
        ("job finished", "failed", "warning"),
        ("job finished", "succeeded", "info"),
        ("retrying", "", "warning"),
    ]
