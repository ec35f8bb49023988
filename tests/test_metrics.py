"""`GET /metrics`: cluster-wide counters from Redis in Prometheus's text format, over a real server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from common.metrics import AttemptOutcome
from common.status import JobState
from common.usage import Usage
from producer.batches import batch_status
from producer.control import cancel_batch
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import eventually, logged_events, run_burst_worker
from worker.answering.run_outcomes import Outcome, Recorded
from worker.answering.store import JobStore
from worker.queue.askq_worker import AskqWorker
from worker.settings import worker_settings

TOKEN = "metrics-token"
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf'^({_NAME})(?:\{{((?:{_NAME}="(?:[^"\\]|\\.)*",?)*)\}})? (\S+)$')
_LABEL = re.compile(rf'({_NAME})="((?:[^"\\]|\\.)*)"')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url, token=TOKEN) as running:
        yield running


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """The exposition's samples and each family's TYPE; any line not of the text format fails."""
    samples: Samples = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line.removeprefix("# HELP ").partition(" ")
            assert help_text, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, kind = line.removeprefix("# TYPE ").split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name in helped, f"TYPE after HELP: {line}"
            assert name not in types, f"TYPE once: {line}"
            types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in types, f"sample before its TYPE: {line}"
            if types[family] == "counter":
                assert name.endswith("_total"), line
            key = (name, frozenset(_LABEL.findall(labels or "")))
            assert key not in samples, f"sample twice: {line}"
            samples[key] = float(value)
    return samples, types


def scrape(server: ApiServer) -> Samples:
    response = httpx2.get(f"{server.url}/metrics", headers=server.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)[0]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _batch(redis: Redis, config: AskqConfig, write: Any, name: str, questions: list[str]) -> None:
    lines = "".join(json.dumps({"id": str(i), "question": q}) + "\n" for i, q in enumerate(questions))
    await submit_file(redis, write(f"{name}.jsonl", lines), config, batch=name)


async def test_counters_say_what_the_batch_did(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """One plain, one retried (500 then ok) and one failed (400) question: jobs, attempts by outcome
    and status, tokens and the latency count say exactly that."""
    await _batch(redis, config, write, "m", ["plain", "flaky [sim:500,ok]", "refused [sim:400]"])
    queued = scrape(server)
    assert value(queued, "askq_queue_depth", queue="questions") == 3
    await run_burst_worker(config, redis_url)
    samples = scrape(server)
    status = await batch_status(redis, "m")
    assert value(samples, "askq_jobs_total", state="succeeded") == 2
    assert value(samples, "askq_jobs_total", state="failed") == 1
    assert value(samples, "askq_jobs_total", state="cancelled") == 0
    attempts = {
        (dict(labels)["outcome"], dict(labels)["status"]): count
        for (name, labels), count in samples.items()
        if name == "askq_provider_attempts_total" and count
    }
    assert attempts == {("ok", "200"): 2, ("retry", "500"): 1, ("failed", "400"): 1}
    assert value(samples, "askq_tokens_total", kind="prompt") == status.prompt_tokens > 0
    assert value(samples, "askq_tokens_total", kind="completion") == status.completion_tokens > 0
    assert value(samples, "askq_job_latency_seconds_count") == 3
    assert value(samples, "askq_job_latency_seconds_bucket", le="+Inf") == 3
    assert value(samples, "askq_job_latency_seconds_sum") > 0
    assert value(samples, "askq_queue_depth", queue="questions") == 0
    assert value(samples, "askq_jobs_running") == 0


async def test_latency_buckets_are_cumulative_and_place_a_slow_job_above_its_time(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Buckets rise with their bound to +Inf (every job); a job whose first token came after 1.2 s is
    in no bucket up to 1 s, and in the sum."""
    await _batch(redis, config, write, "h", ["one", "two [sim:slow=1200]"])
    await run_burst_worker(config, redis_url)
    samples = scrape(server)
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "askq_job_latency_seconds_bucket"
    )
    counts = [count for _, count in buckets]
    assert len(buckets) > 5
    assert counts == sorted(counts)
    assert buckets[-1] == (float("inf"), 2)
    assert value(samples, "askq_job_latency_seconds_bucket", le="1") <= 1
    assert value(samples, "askq_job_latency_seconds_sum") >= 1.2


async def test_a_cancelled_queued_job_counts_once(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq cancel` ends queued jobs: they count as cancelled, and a worker after it adds nothing."""
    await _batch(redis, config, write, "c", ["a", "b"])
    await cancel_batch(redis, "c", config)
    await run_burst_worker(config, redis_url)
    samples = scrape(server)
    assert value(samples, "askq_jobs_total", state="cancelled") == 2
    assert value(samples, "askq_jobs_total", state="succeeded") == 0
    assert value(samples, "askq_queue_depth", queue="questions") == 0


async def test_workers_alive_counts_a_running_worker_and_drops_after_it_stops(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """A worker's heartbeat makes it count while it runs; its clean shutdown takes it out at once."""
    assert value(scrape(server), "askq_workers_alive") == 0
    worker = AskqWorker(**{**worker_settings(config, url=redis_url), "handle_signals": False})
    running = asyncio.create_task(worker.main())

    async def alive(count: int) -> bool:
        return value(await asyncio.to_thread(scrape, server), "askq_workers_alive") == count

    try:
        await eventually(lambda: alive(1))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
    assert value(scrape(server), "askq_workers_alive") == 0
    assert await redis.zcard(keys.WORKERS) == 0


async def test_a_running_job_is_a_running_job(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """While a slow answer streams, jobs running says 1 (from the batch counters), then 0."""
    await _batch(redis, config, write, "r", ["slow one [sim:slow=30000]"])
    worker = asyncio.create_task(run_burst_worker(config, redis_url))

    async def running(count: int) -> bool:
        return value(await asyncio.to_thread(scrape, server), "askq_jobs_running") == count

    try:
        await eventually(lambda: running(1))
    finally:
        await cancel_batch(redis, "r", config)
        await worker
    assert value(scrape(server), "askq_jobs_running") == 0
    assert value(scrape(server), "askq_jobs_total", state="cancelled") == 1


def test_metrics_want_the_token(server: ApiServer) -> None:
    """/metrics is behind the same token as the rest of the API."""
    assert httpx2.get(f"{server.url}/metrics").status_code == 401


def test_the_parser_refuses_what_is_not_the_format() -> None:
    """The test's own parser is strict: a sample without a TYPE or a stray line fails."""
    with pytest.raises(AssertionError):
        parse("askq_x 1\n")
    with pytest.raises(AssertionError):
        parse("# HELP askq_x x\n# TYPE askq_x gauge\naskq_x{a=b} 1\n")


async def test_a_job_ended_twice_counts_once(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A second run's end of a job already recorded (at-least-once delivery) adds nothing."""
    await _batch(redis, config, write, "d", ["once"])
    await run_burst_worker(config, redis_url)
    before = scrape(server)
    again = Outcome(
        state=JobState.SUCCEEDED,
        attempts=1,
        answer="again",
        usage=Usage(prompt_tokens=5, completion_tokens=5, total_tokens=10),
        latency_ms=10.0,
        attempt_ends=((AttemptOutcome.OK, "200"),),
    )
    recorded = await JobStore(redis, config.retention.ttl_s).finish("d:0", "d", again)
    assert recorded is Recorded.ENDED_ELSEWHERE
    assert scrape(server) == before


def _attempts(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["outcome"], dict(labels)["status"]): count
        for (name, labels), count in samples.items()
        if name == "askq_provider_attempts_total" and count
    }


async def _streaming(redis: Redis, job_id: str) -> bool:
    """The job's attempt has started and sent text: its run has spent an attempt."""
    return len(await logged_events(redis, job_id)) >= 3


async def test_a_job_cancelled_mid_stream_counts_its_attempt(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`askq cancel` of a streaming job: its one attempt counts (as lost: it was stopped), its end once."""
    sim.configure(tokens_per_s=20, answer_tokens=400)  # 20 s an answer: only the cancel ends it sooner
    await _batch(redis, config, write, "x", ["streams a while"])
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    await eventually(lambda: _streaming(redis, "x:0"))
    await cancel_batch(redis, "x", config)
    await asyncio.wait_for(worker, 10)
    samples = scrape(server)
    assert _attempts(samples) == {(AttemptOutcome.LOST.value, "none"): 1}
    assert value(samples, "askq_jobs_total", state="cancelled") == 1
    assert value(samples, "askq_jobs_running") == 0


async def test_a_job_handed_back_by_a_stopping_worker_counts_its_attempt_once(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A worker stopping hands its streaming job back: that run's attempt counts at the hand-back, and
    the run that then answers adds only its own."""
    sim.configure(tokens_per_s=20, answer_tokens=400)
    await _batch(redis, config, write, "s", ["streams a while"])
    worker = AskqWorker(**{**worker_settings(config, url=redis_url), "handle_signals": False})
    running = asyncio.create_task(worker.main())

    worker.main_task = running  # as arq's run() sets it: a stop ends the polling too
    try:
        await eventually(lambda: _streaming(redis, "s:0"))
        worker.handle_sig(signal.SIGINT)  # what a second Ctrl-C does: running jobs go back at once
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()  # waits for the job's hand-back
    assert await redis.hget(keys.job_record("s:0"), "state") == JobState.QUEUED.value.encode()
    handed_back = scrape(server)
    assert _attempts(handed_back) == {(AttemptOutcome.LOST.value, "none"): 1}
    assert value(handed_back, "askq_jobs_total", state="succeeded") == 0
    sim.configure(tokens_per_s=0)
    await run_burst_worker(config, redis_url)
    answered = scrape(server)
    assert _attempts(answered) == {(AttemptOutcome.LOST.value, "none"): 1, ("ok", "200"): 1}
    assert value(answered, "askq_jobs_total", state="succeeded") == 1


async def test_a_job_cancelled_as_it_ended_counts_the_run_s_attempts_and_usage_once(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A run that answered after `askq cancel` ended its job: the acknowledgement counts its attempts
    and the provider's usage, once however often it is repeated; the job's end stays counted once."""
    await _batch(redis, config, write, "e", ["answered too late"])
    store = JobStore(redis, config.retention.ttl_s)
    await store.mark_running("e:0", "e")
    await cancel_batch(redis, "e", config)
    late = Outcome(
        state=JobState.SUCCEEDED,
        attempts=2,
        answer="late",
        usage=Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12),
        latency_ms=10.0,
        attempt_ends=((AttemptOutcome.RETRY, "500"), (AttemptOutcome.OK, "200")),
    )
    assert await store.finish("e:0", "e", late) is Recorded.ENDED_ELSEWHERE
    for _ in range(2):
        assert await store.acknowledge_cancel("e:0", "e", seq=1, attempt=2, events=[], spent=late)
    samples = scrape(server)
    assert _attempts(samples) == {("retry", "500"): 1, ("ok", "200"): 1}
    assert value(samples, "askq_tokens_total", kind="prompt") == 5
    assert value(samples, "askq_tokens_total", kind="completion") == 7
    assert value(samples, "askq_jobs_total", state="cancelled") == 1
    assert value(samples, "askq_job_latency_seconds_count") == 0


async def test_a_rejected_job_adds_no_latency_sample(
    server: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A job refused unrun (an unreadable payload) counts as failed, with no attempt and no latency."""
    await _batch(redis, config, write, "j", ["never read"])
    await redis.set(keys.arq_job("j:0"), b"\x80 not json")
    await run_burst_worker(config, redis_url)
    samples = scrape(server)
    assert value(samples, "askq_jobs_total", state="failed") == 1
    assert _attempts(samples) == {}
    assert value(samples, "askq_job_latency_seconds_count") == 0
    assert value(samples, "askq_job_latency_seconds_sum") == 0


async def test_a_scrape_drops_the_names_of_expired_batches(
    server: ApiServer, redis: Redis, config: AskqConfig, write: Any
) -> None:
    """Jobs running reads the batches kept; an expired batch's name left in the index is dropped."""
    await _batch(redis, config, write, "kept", ["one"])
    await redis.zadd(keys.BATCHES, {"expired": 1})  # its record gone with its ttl
    assert value(scrape(server), "askq_jobs_running") == 0
    assert await redis.zrange(keys.BATCHES, 0, -1) == [b"kept"]
