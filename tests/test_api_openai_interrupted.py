"""A Batch API batch while its creating server validates it: real server processes, the creator
SIGKILLed mid-submit or left to finish a submit longer than its lease, the other server reading the
batch through the stock ``openai`` client meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI
from openai.types import Batch
from redis.asyncio import Redis

from common import keys, record
from common.status import JobState
from server.openai_validating import INTERRUPTED
from tests.api_server import ApiServer, api_server
from tests.helpers import eventually
from tests.test_api_openai_batch import TOKEN, jsonl, request_line

LINES = 40_000
"""Enough lines that enqueueing them (500 a chunk) takes longer than a lease of 1 s."""
LEASE_WRITES = 5
"""The lease taken, then renewed every third of a second past the time it would lapse unrenewed."""


@pytest.fixture
def servers(redis_url: str, tmp_path: Path) -> Iterator[tuple[ApiServer, ApiServer]]:
    """Two servers on one Redis, with the shortest lease (1 s): the creator, then the reader."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("limits:\n  lease_s: 1\n", encoding="utf-8")
    env = {"ASKQ_CONFIG": str(jobs), "TMPDIR": str(tmp_path)}  # a killed server's spooled upload too
    with (
        api_server(redis_url, token=TOKEN, env=env) as creator,
        api_server(redis_url, token=TOKEN, env=env) as reader,
    ):
        yield creator, reader


@pytest.fixture
async def clients(servers: tuple[ApiServer, ApiServer]) -> AsyncIterator[tuple[AsyncOpenAI, AsyncOpenAI]]:
    creator, reader = servers
    async with (
        AsyncOpenAI(base_url=f"{creator.url}/v1", api_key=TOKEN, max_retries=0) as creating,
        AsyncOpenAI(base_url=f"{reader.url}/v1", api_key=TOKEN, max_retries=0) as reading,
    ):
        yield creating, reading


async def _start_create(client: AsyncOpenAI) -> asyncio.Task[Batch]:
    """Upload a large file and start its batch's create, which answers once it is all enqueued."""
    content = jsonl(*(request_line(f"q{n}", f"question {n}") for n in range(LINES)))
    uploaded = await client.files.create(file=("big.jsonl", content), purpose="batch")
    return asyncio.create_task(
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    )


async def test_a_batch_whose_server_died_while_validating_it_ends_failed(
    redis: Redis, servers: tuple[ApiServer, ApiServer], clients: tuple[AsyncOpenAI, AsyncOpenAI]
) -> None:
    """SIGKILL mid-submit: once the dead server's lease lapses, another server's read says failed,
    validation interrupted, and the requests enqueued before the kill are cancelled, none queued."""
    creator, reader = clients
    creating = await _start_create(creator)
    batch_id = await _first_chunk_enqueued(redis)
    os.kill(servers[0].pid, signal.SIGKILL)
    with pytest.raises(openai.APIConnectionError):  # the create's connection died with its server
        await creating
    enqueued = int(await redis.hget(keys.batch_record(batch_id), record.TOTAL) or 0)
    assert 0 < enqueued < LINES  # killed mid-submit, as this test means to
    assert not await redis.hexists(keys.openai_batch(batch_id), "in_progress_at")

    await eventually(lambda: _lapsed(redis, batch_id), timeout_s=10)
    batch = await reader.batches.retrieve(batch_id)
    assert (batch.status, batch.in_progress_at) == ("failed", None)
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(error.code, error.message) for error in batch.errors.data] == [("server_error", INTERRUPTED)]
    assert [(listed.id, listed.status) for listed in (await reader.batches.list()).data] == [
        (batch_id, "failed")
    ]
    assert await redis.zcard(keys.QUEUE) == 0  # what the dead server enqueued will not run
    assert int(await redis.hget(keys.batch_record(batch_id), JobState.CANCELLED.value) or 0) >= enqueued


async def test_a_submit_longer_than_its_lease_renews_it_and_is_never_failed(
    redis: Redis, clients: tuple[AsyncOpenAI, AsyncOpenAI]
) -> None:
    """The creator renews its lease while it submits: another server reading the batch all along sees
    validating, never failed, then in_progress once the create answers."""
    creator, reader = clients
    await redis.config_set("notify-keyspace-events", "K$")  # each SET of a lease is told
    pubsub = redis.pubsub()
    await pubsub.psubscribe(f"__keyspace@*__:{keys.openai_batch_lease('*')}")
    try:
        creating = await _start_create(creator)
        seen: set[str] = set()
        writes, deadline = 0, time.monotonic() + 60
        while writes < LEASE_WRITES:
            seen |= {batch.status for batch in (await reader.batches.list()).data}
            assert seen <= {"validating"}  # never failed while its creator lives
            assert not creating.done()  # the submit outlasts a lease, as this test means it to
            assert time.monotonic() < deadline
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            writes += message is not None and message["data"] == b"set"
        batch = await creating
    finally:
        await pubsub.aclose()
        await redis.config_set("notify-keyspace-events", "")
    assert seen == {"validating"}
    assert (batch.status, batch.failed_at) == ("in_progress", None)
    assert (await reader.batches.retrieve(batch.id)).status == "in_progress"
    assert not await redis.exists(keys.openai_batch_lease(batch.id))  # dropped when validating ended


async def _first_chunk_enqueued(redis: Redis) -> str:
    """The id of the batch being created, once its lease is held and its first requests are queued."""
    found: list[str] = []

    async def first_chunk() -> bool:
        found[:] = [raw.decode() for raw in await redis.zrange(keys.OPENAI_BATCHES, 0, 0)]
        return (
            bool(found)
            and await redis.exists(keys.openai_batch_lease(found[0]), keys.batch_record(found[0])) == 2
        )

    await eventually(first_chunk, timeout_s=60)
    return found[0]


async def _lapsed(redis: Redis, batch_id: str) -> bool:
    return not await redis.exists(keys.openai_batch_lease(batch_id))
