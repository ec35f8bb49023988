"""Stream events on a batch's pub/sub channel, read with plain redis-py as any other program would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from producer.submit import submit_file
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker


async def _collect(
    redis: Redis, channel: str, subscribed: asyncio.Event, messages: list[bytes], jobs: int = 1
) -> list[dict[str, Any]]:
    """Every event on the channel until ``jobs`` jobs have ended; ``messages`` gets each raw message."""
    events: list[dict[str, Any]] = []
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel)
        subscribed.set()
        async for message in pubsub.listen():
            messages.append(message["data"])
            events += json.loads(message["data"])
            if sum(event["type"] in ("done", "failed") for event in events) == jobs:
                return events
    return events


async def _answer_while_listening(
    redis: Redis,
    redis_url: str,
    config: AskqConfig,
    write: Any,
    question: str,
    messages: list[bytes] | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    messages = [] if messages is None else messages
    path = write("one.jsonl", json.dumps({"id": "x", "question": question}) + "\n")
    await submit_file(redis, path, config, batch="live")
    subscribed = asyncio.Event()
    listener = asyncio.create_task(_collect(redis, "askq:batch:live:events", subscribed, messages))
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
    """With a flush interval, 300 tokens arrive in far fewer delta events."""
    config = parse_config({"stream": {"flush_interval_ms": 50}})
    sim.configure(ttft_ms=0, tokens_per_s=1500, answer_tokens=300)
    events, row = await _answer_while_listening(redis, redis_url, config, write, "Coalesce me")
    deltas = [event for event in events if event["type"] == "delta"]
    assert 2 <= len(deltas) <= 30
    assert "".join(event["text"] for event in deltas) == row.answer


async def test_one_message_carries_many_jobs_events(
    redis: Redis, redis_url: str, sim: Simulator, write: Any
) -> None:
    """Jobs streaming at once share each flush: far fewer messages than events, every job's text whole."""
    config = parse_config({"stream": {"flush_interval_ms": 50}, "limits": {"concurrency": 20}})
    sim.configure(ttft_ms=20, tokens_per_s=200, answer_tokens=60)
    lines = "".join(json.dumps({"id": str(n), "question": f"q{n}"}) + "\n" for n in range(20))
    await submit_file(redis, write("many.jsonl", lines), config, batch="many")
    messages: list[bytes] = []
    subscribed = asyncio.Event()
    listener = asyncio.create_task(_collect(redis, "askq:batch:many:events", subscribed, messages, 20))
    await subscribed.wait()
    await run_burst_worker(config, redis_url)
    rows = await results(redis, "many")
    events = await asyncio.wait_for(listener, 10)
    assert len(messages) * 4 < len(events)
    for row in rows:
        mine = [event for event in events if event["job_id"] == row.job_id]
        assert [event["seq"] for event in mine] == list(range(1, len(mine) + 1))
        assert "".join(event.get("text", "") for event in mine) == row.answer


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


async def test_the_event_log_holds_the_same_entries_as_the_channel(
    redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """A plain XRANGE of the batch's log returns exactly the messages the channel carried, in order."""
    sim.configure(ttft_ms=5, tokens_per_s=1000, answer_tokens=80)
    messages: list[bytes] = []
    events, _ = await _answer_while_listening(redis, redis_url, config, write, "Log me [sim:cut]", messages)
    entries = await redis.xrange("askq:batch:live:log")
    assert [fields[b"events"] for _, fields in entries] == messages
    kinds = [event["type"] for event in events]
    assert [kind for kind in kinds if kind != "delta"] == ["start", "retry", "start", "done"]
