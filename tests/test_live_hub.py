"""The server's live hub against a real Redis: one feed per log, a slow client falls back to the log."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from common import keys
from common.replay import Entry
from producer.log_reader import id_text
from server.events.hub import Listener, LiveHub
from server.events.reader import HubReader
from tests.helpers import eventually

LOG, CHANNEL = keys.batch_log("hub"), keys.batch_events_channel("hub")


async def _write(redis: Redis, count: int) -> list[str]:
    """``count`` entries in the log, each announced on the channel as a worker does."""
    ids = []
    for n in range(count):
        ids.append(id_text(await redis.xadd(LOG, {keys.LOG_FIELD: f"[{n}]"})))
        await redis.publish(CHANNEL, f"[{n}]")
    return ids


async def _read_all(reader: HubReader, after: str, count: int) -> list[Entry]:
    got: list[Entry] = []
    while len(got) < count:
        got += await reader.read(LOG, id_text(got[-1][0]) if got else after, 7, 1000)
    return got


async def test_a_client_whose_queue_overflowed_reads_the_rest_from_the_log(redis: Redis) -> None:
    """More entries than its queue holds arrive while it reads none: it gets each one, once, in order."""
    hub = LiveHub(redis, queue_limit=3)
    reader = HubReader(hub, redis, {LOG: CHANNEL})
    try:
        assert await reader.read(LOG, "0-0", 7, 10) == []  # joined, caught up, nothing yet
        written = await _write(redis, 20)
        await eventually(lambda: _behind(reader))
        got = await _read_all(reader, "0-0", 20)
    finally:
        reader.close()
        await hub.aclose()
    assert [id_text(entry_id) for entry_id, _ in got] == written


async def test_a_client_joining_late_reads_the_backlog_then_the_feed(redis: Redis) -> None:
    """Entries from before it joined come from the log, later ones from the hub: none missed or twice."""
    hub = LiveHub(redis)
    early = HubReader(hub, redis, {LOG: CHANNEL})
    late = HubReader(hub, redis, {LOG: CHANNEL})
    try:
        assert await early.read(LOG, "0-0", 7, 10) == []  # the feed runs
        before = await _write(redis, 10)
        got = await _read_all(late, "0-0", 10)
        after = await _write(redis, 10)
        got += await _read_all(late, id_text(got[-1][0]), 10)
        assert await redis.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 1)]
    finally:
        early.close()
        late.close()
        await hub.aclose()
    assert [id_text(entry_id) for entry_id, _ in got] == before + after


async def test_clients_cancelled_while_joining_leave_no_feed_behind(redis: Redis) -> None:
    """A storm of clients hanging up at any point of joining: no feed, no subscription is left."""
    hub = LiveHub(redis)

    async def client() -> None:
        reader = HubReader(hub, redis, {LOG: CHANNEL})
        try:
            await reader.read(LOG, "0-0", 7, 1000)
        finally:
            reader.close()  # as the route does when its client hangs up

    async def hang_up_after(turns: int) -> None:
        task = asyncio.create_task(client())
        for _ in range(turns):
            await asyncio.sleep(0)  # one turn of the event loop: the client gets that far in joining
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        await asyncio.gather(*(hang_up_after(turns % 8) for turns in range(40)))
        assert hub.logs() == []
        await eventually(lambda: _subscribers_gone(redis))
    finally:
        await hub.aclose()


async def _subscribers_gone(redis: Redis) -> bool:
    return await redis.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 0)]


def _events(*job_ids: str) -> list[dict[str, object]]:
    return [
        {"type": "delta", "job_id": job_id, "seq": 1, "attempt": 1, "ts": 0, "text": "x"}
        for job_id in job_ids
    ]


async def test_a_reader_of_one_job_is_handed_only_that_jobs_events(redis: Redis) -> None:
    """Of a busy batch's entries, a job's reader gets those holding its events, with only its events."""
    hub = LiveHub(redis)
    reader = HubReader(hub, redis, {LOG: CHANNEL}, job_id="hub:1")
    written = []
    try:
        assert await reader.read(LOG, "0-0", 7, 10) == []  # joined, caught up, nothing yet
        for job_ids in (["hub:2", "hub:3"], ["hub:2", "hub:1", "hub:3"]):
            data = json.dumps(_events(*job_ids))
            written.append(id_text(await redis.xadd(LOG, {keys.LOG_FIELD: data})))
            await redis.publish(CHANNEL, data)
        got = await reader.read(LOG, "0-0", 7, 5000)
    finally:
        reader.close()
        await hub.aclose()
    assert [id_text(entry_id) for entry_id, _ in got] == written[1:]
    assert json.loads(got[0][1][keys.LOG_FIELD.encode()]) == _events("hub:1")


async def _behind(reader: HubReader) -> bool:
    return reader.behind(LOG)


async def test_a_wait_ends_at_its_timeout_after_earlier_waits_ended_by_entries() -> None:
    """Two waits ended by entries, then one with nothing to come: it ends too (the timer is set again)."""
    listener = Listener(10, job_id=None)
    loop = asyncio.get_running_loop()
    for n in range(2):
        entry: Entry = (f"{n}-1".encode(), {})
        waiting = asyncio.create_task(listener.wait(0.2))
        loop.call_soon(listener.offer, [entry])  # runs once the wait has begun
        await waiting
    await asyncio.wait_for(listener.wait(0.2), 10)  # a wait whose timer was lost would hang here
    assert [entry_id for entry_id, _ in listener.take("0-0", 7)] == [b"0-1", b"1-1"]
