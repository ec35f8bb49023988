"""Stream events on a job's pub/sub channel, read with plain redis-py as any other program would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker


async def _collect(redis: Redis, channel: str, subscribed: asyncio.Event) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel)
        subscribed.set()
        async for message in pubsub.listen():
            events.append(json.loads(message["data"]))
            if events[-1]["type"] in ("done", "failed"):
                return events
    return events


async def _answer_while_listening(
    redis: Redis, redis_url: str, config: AskqConfig, write: Any, question: str
) -> tuple[list[dict[str, Any]], Any]:
    path = write("one.jsonl", json.dumps({"id": "x", "question": question}) + "\n")
    await submit_file(redis, path, config, batch="live")
    subscribed = asyncio.Event()
    listener = asyncio.create_task(_collect(redis, "askq:events:live:x", subscribed))
    await subscribed.wait()
    await run_burst_worker(config, redis_url)
    events = await asyncio.wait_for(listener, 10)
    [row] = await results(redis, "live")
    return events, row


async def test_concatenated_deltas_equal_the_stored_answer(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A raw subscriber gets start, deltas and done with contiguous seq; the deltas rebuild the answer."""
    sim.configure(ttft_ms=5, tokens_per_s=2000, answer_tokens=120)
    events, row = await _answer_while_listening(redis, redis_url, config, write, "Stream me a long answer")
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "start"
    assert events[0]["model"] == "gpt-4o-mini"
    assert events[-1]["type"] == "done"
    assert events[-1]["usage"]["completion_tokens"] == 120
    text = "".join(event["text"] for event in events if event["type"] == "delta")
    assert text == row.answer
    assert all(event["job_id"] == "live:x" and event["attempt"] == 1 for event in events)


async def test_deltas_are_coalesced_not_one_publish_per_token(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """With a flush interval, 300 tokens arrive in far fewer delta events, the first on its own."""
    config = parse_config({"stream": {"flush_interval_ms": 50, "flush_chars": 100_000}})
    sim.configure(ttft_ms=0, tokens_per_s=1500, answer_tokens=300)
    events, row = await _answer_while_listening(redis, redis_url, config, write, "Coalesce me")
    deltas = [event for event in events if event["type"] == "delta"]
    assert 2 <= len(deltas) <= 30
    assert "".join(event["text"] for event in deltas) == row.answer


async def test_a_retried_stream_announces_the_retry(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A cut stream is followed by a retry event and a new start; the final attempt's text is the answer."""
    events, row = await _answer_while_listening(redis, redis_url, config, write, "Cut me once [sim:cut]")
    kinds = [event["type"] for event in events]
    assert kinds.count("start") == 2
    assert kinds.count("retry") == 1
    retry_at = kinds.index("retry")
    assert events[retry_at]["attempt"] == 1
    assert "retry_in_s" in events[retry_at]
    final_text = "".join(event["text"] for event in events[retry_at:] if event["type"] == "delta")
    assert final_text == row.answer
    assert row.attempts == 2


async def test_the_replay_log_holds_the_same_events_as_the_channel(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A plain XRANGE of askq:log:JOB returns exactly the JSON messages the channel carried, in order."""
    sim.configure(ttft_ms=5, tokens_per_s=1000, answer_tokens=80)
    events, _ = await _answer_while_listening(redis, redis_url, config, write, "Log me [sim:cut]")
    entries = await redis.xrange("askq:log:live:x")
    assert [json.loads(fields[b"event"]) for _, fields in entries] == events
    batch_entries = await redis.xrange("askq:batch:live:log")
    batch_kinds = [json.loads(fields[b"event"])["type"] for _, fields in batch_entries]
    assert batch_kinds == ["start", "start", "done"]
