"""Lossless tail: late joiners, killed connections, retries and trimmed logs, against real Redis."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from askq.tail_view import _JobView
from common import keys, record
from common.config import AskqConfig
from common.events import EventType, StreamEvent
from common.reconnect import Reconnecting
from common.replay import encode_entry
from producer.submit import submit_file
from producer.tail import Finished, Gap, TailItem, Waiting, follow_job
from tests.conftest import Simulator
from tests.helpers import eventually, final_text, keeping_events, logged_events, results, run_burst_worker


async def _submit_one(redis: Redis, config: AskqConfig, write: Any, question: str) -> str:
    path = write("one.jsonl", json.dumps({"id": "x", "question": question}) + "\n")
    await submit_file(redis, path, config, batch="t")
    return "t:x"


async def _collect(redis: Redis, job_id: str, **options: Any) -> list[TailItem]:
    return [item async for item in follow_job(redis, job_id, **options)]


def _events(items: list[TailItem]) -> list[StreamEvent]:
    return [item for item in items if isinstance(item, StreamEvent)]


async def _log_length(redis: Redis, job_id: str) -> int:
    return len(await logged_events(redis, job_id))


async def test_joiners_at_any_point_rebuild_the_stored_answer(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """Tails joining before the start, at random points mid-stream and after the end all get every event
    (the ended job's too, its events kept: ``stream.keep_ended_events``)."""
    config = keeping_events(config)
    sim.configure(ttft_ms=20, tokens_per_s=300, answer_tokens=300)
    job_id = await _submit_one(redis, config, write, "A long story, please")
    waiting = asyncio.Event()

    async def early_tail() -> list[TailItem]:
        items = []
        async for item in follow_job(redis, job_id):
            items.append(item)
            waiting.set()
        return items

    early = asyncio.create_task(early_tail())
    await asyncio.wait_for(waiting.wait(), 10)
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    joiners = []
    for point in sorted(random.Random(3).sample(range(2, 16), 4)):
        await eventually(lambda point=point: _at_least(redis, job_id, point))
        joiners.append(asyncio.create_task(_collect(redis, job_id)))
    await worker
    late = await _collect(redis, job_id)
    [row] = await results(redis, "t")
    early_items = await early
    assert isinstance(early_items[0], Waiting)
    for items in [early_items, *[await joiner for joiner in joiners], late]:
        events = _events(items)
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert final_text(events) == row.answer
        assert events[-1].type == "done"
    assert len(_events(late)) > 10


async def _at_least(redis: Redis, job_id: str, count: int) -> bool:
    return await _log_length(redis, job_id) >= count


async def test_a_killed_connection_resumes_without_loss_or_repeat(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """CLIENT KILL on the tail's connection mid-stream: it reconnects and ends with every event once."""
    sim.configure(ttft_ms=20, tokens_per_s=300, answer_tokens=300)
    job_id = await _submit_one(redis, config, write, "Another long story")
    tail_client = Redis.from_url(redis_url, client_name="tail-under-test")
    received = asyncio.Event()
    items: list[TailItem] = []

    async def tail() -> None:
        async for item in follow_job(tail_client, job_id):
            items.append(item)
            if len(_events(items)) >= 5:
                received.set()

    tail_task = asyncio.create_task(tail())
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    await asyncio.wait_for(received.wait(), 20)
    killed = await _kill_client(redis, "tail-under-test")
    await asyncio.wait_for(tail_task, 30)
    await worker
    await tail_client.aclose()
    [row] = await results(redis, "t")
    assert killed == 1
    notices = [item for item in items if isinstance(item, Reconnecting)]
    assert notices, "the kill was not noticed"
    events = _events(items)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert final_text(events) == row.answer
    assert items.index(notices[0]) < len(items) - 1  # events followed the reconnection


async def _kill_client(redis: Redis, name: str) -> int:
    clients = await redis.client_list()
    ids = [client["id"] for client in clients if client.get("name") == name]
    for client_id in ids:
        await redis.client_kill_filter(_id=client_id)
    return len(ids)


async def test_a_retried_stream_ends_with_the_stored_answer(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A stream cut mid-way: tail sees the partial attempt, a retry, and a fresh start equal to the answer."""
    sim.configure(ttft_ms=5, tokens_per_s=2000, answer_tokens=60)
    job_id = await _submit_one(redis, config, write, "Cut me [sim:cut]")
    tail_task = asyncio.create_task(_collect(redis, job_id))
    await run_burst_worker(config, redis_url)
    events = _events(await tail_task)
    [row] = await results(redis, "t")
    kinds = [event.type.value for event in events]
    assert kinds.count("retry") == 1
    assert "delta" in kinds[: kinds.index("retry")]  # there was partial text to discard
    assert final_text(events) == row.answer
    assert "".join(event.text or "" for event in events) != row.answer


async def test_a_trimmed_log_is_reported_as_a_gap(redis: Redis, config: AskqConfig, write: Any) -> None:
    """When the log lost a running job's oldest events, tail says which ones rather than print a short
    answer quietly."""
    job_id = await _submit_one(redis, config, write, "Trim me")
    await _lose_a_run(redis, job_id)  # running, seqs 1 and 2 logged
    later = StreamEvent(type="delta", job_id=job_id, seq=3, attempt=1, ts=time.time(), text="swer")
    await redis.xadd(keys.batch_log("t"), {keys.LOG_FIELD: encode_entry([later.to_json()])})
    await redis.xtrim(keys.batch_log("t"), maxlen=1, approximate=False)
    items: list[TailItem] = []
    async for item in follow_job(redis, job_id):
        items.append(item)
        if isinstance(item, StreamEvent):
            break  # the job runs on; what came first is what matters
    assert items == [Gap(job_id, 1, 2), later]


async def test_an_ended_jobs_trimmed_events_give_way_to_its_stored_result(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """An ended job whose first events left the log is shown from its stored result, with no gap."""
    config = keeping_events(config)  # its events stay until this test trims them
    config = config.model_copy(update={"stream": config.stream.model_copy(update={"flush_interval_ms": 0})})
    sim.configure(ttft_ms=0, tokens_per_s=500, answer_tokens=40)
    job_id = await _submit_one(redis, config, write, "Trim me")
    await run_burst_worker(config, redis_url)
    entries = await redis.xrange(keys.batch_log("t"))
    assert len(entries) > 5
    await redis.xtrim(keys.batch_log("t"), maxlen=3, approximate=False)
    items = await _collect(redis, job_id, block_ms=60_000)  # must not wait: the job has ended
    [row] = await results(redis, "t")
    assert len(items) == 1
    assert isinstance(items[0], Finished)
    assert items[0].answer == row.answer


async def test_a_finished_job_without_its_log_falls_back_to_the_stored_result(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """If the event log is gone but the record stands, tail prints the stored answer at once."""
    job_id = await _submit_one(redis, config, write, "Answer me")
    await run_burst_worker(config, redis_url)
    await redis.delete(keys.batch_log("t"))
    items = await _collect(redis, job_id, block_ms=60_000)  # must not wait: the job has ended
    [row] = await results(redis, "t")
    assert len(items) == 1
    assert isinstance(items[0], Finished)
    assert items[0].answer == row.answer


async def test_a_rerun_continues_the_sequence_and_voids_the_lost_run(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A job run again after its worker died mid-stream keeps seq contiguous and announces a retry."""
    config = keeping_events(config)  # its events are read once it has ended
    job_id = await _submit_one(redis, config, write, "Run me twice")
    await _lose_a_run(redis, job_id)
    await run_burst_worker(config, redis_url)
    events = _events(await _collect(redis, job_id))
    [row] = await results(redis, "t")
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[2].type == "retry"
    assert "stopped mid-way" in (events[2].error or "")
    assert final_text(events) == row.answer


async def _lose_a_run(redis: Redis, job_id: str) -> None:
    """What a worker lost mid-stream leaves: a running record that counts no events, two logged."""
    now = time.time()
    await redis.hset(
        keys.job_record(job_id),
        mapping={record.STATE: "running", record.STARTED_AT: str(now), record.LOG_FROM: int(now * 1000) - 1},
    )
    await redis.hincrby(keys.batch_record("t"), "queued", -1)  # type: ignore[misc]  # redis-py types sync and async alike
    await redis.hincrby(keys.batch_record("t"), "running", 1)  # type: ignore[misc]  # as above
    events = [
        StreamEvent(type=kind, job_id=job_id, seq=seq, attempt=1, ts=now, text=text).to_json()
        for seq, kind, text in ((1, "start", None), (2, "delta", "half an ans"))
    ]
    await redis.xadd(keys.batch_log("t"), {keys.LOG_FIELD: encode_entry(events)})


async def test_the_event_log_expires_after_the_result(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """The batch's log and results hash outlive the job's record, the log by half the retention at most."""
    short = config.model_copy(
        update={"retention": config.retention.model_copy(update={"results_days": 2 / 86_400})}
    )
    job_id = await _submit_one(redis, short, write, "Forget me soon")
    await run_burst_worker(short, redis_url)
    # The record's read last: set in the same call, the others may only have as long left, or longer.
    log_ttl = await redis.pttl(keys.batch_log("t"))
    results_ttl = await redis.pttl(keys.batch_results("t"))  # the question and answer
    record_ttl = await redis.pttl(keys.job_record(job_id))
    assert 0 < record_ttl <= 2000
    assert record_ttl <= log_ttl <= 3000
    assert record_ttl <= results_ttl <= 2000
    gone = [keys.job_record(job_id), keys.batch_log("t"), keys.batch_results("t")]
    await eventually(lambda: _none_exist(redis, gone), timeout_s=10)


async def _none_exist(redis: Redis, names: list[str]) -> bool:
    return await redis.exists(*names) == 0


class TestRunView:
    @staticmethod
    def _events() -> list[StreamEvent]:
        def event(seq: int, kind: EventType, part: str | None = None, text: str | None = None) -> StreamEvent:
            return StreamEvent(
                type=kind, job_id="schedule:n:1", seq=seq, attempt=1, ts=0.0, part=part, text=text
            )

        return [
            event(1, EventType.START),
            event(2, EventType.START, "map 1/2"),
            event(3, EventType.START, "map 2/2"),
            event(4, EventType.DELTA, "map 2/2", "second "),
            event(5, EventType.DELTA, "map 1/2", "first "),
            event(6, EventType.DELTA, "map 2/2", "chunk"),
            event(7, EventType.PART_DONE, "map 2/2"),
            event(8, EventType.DELTA, "map 1/2", "chunk"),
            event(9, EventType.PART_DONE, "map 1/2"),
            event(10, EventType.DELTA, "summary", "the "),
            event(11, EventType.DELTA, "summary", "summary"),
            event(12, EventType.PART_DONE, "summary"),
            event(13, EventType.DONE),
        ]

    def test_a_terminal_shows_each_call_whole_when_done_and_the_summary_live(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Interleaved map deltas come out as whole blocks in the order the calls ended; then the summary."""
        view = _JobView(live=True)
        for item in self._events():
            view.show(item)
        assert capsys.readouterr().out == "second chunk\nfirst chunk\nthe summary\n"

    def test_a_pipe_gets_only_the_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`askq tail RUN > file` holds the run's summary, not its map outputs."""
        view = _JobView(live=False)
        for item in self._events():
            view.show(item)
        assert capsys.readouterr().out == "the summary"
