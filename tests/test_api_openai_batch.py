"""The OpenAI Batch API at /v1: the stock ``openai`` client against a real server, a real worker and the
simulator; files in Redis, batches as askq batches, output and error files in OpenAI's formats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from server import openai_files
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import askq, run_burst_worker

TOKEN = "batch-api-token"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url, token=TOKEN) as running:
        yield running


@pytest.fixture
async def client(server: ApiServer, redis: Redis) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0) as stock:
        yield stock


def request_line(custom_id: str, question: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "sim-model", "messages": [{"role": "user", "content": question}]},
    }


def jsonl(*lines: dict[str, Any] | str) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


async def upload(client: AsyncOpenAI, content: bytes, name: str = "requests.jsonl") -> str:
    uploaded = await client.files.create(file=(name, content), purpose="batch")
    return uploaded.id


async def create(client: AsyncOpenAI, content: bytes, **extra: Any) -> openai.types.Batch:
    file_id = await upload(client, content)
    return await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", **extra
    )


# --- files ---


async def test_an_uploaded_file_is_retrieved_and_read_back_byte_for_byte(client: AsyncOpenAI) -> None:
    """files.create stores the upload; retrieve gives its object, content its exact bytes."""
    content = jsonl(request_line("a", "one")) + "caf\u00e9 \u2028 over 1 MB: ".encode() + b"x" * 2_500_000
    uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (len(content), "in.jsonl", "batch")
    retrieved = await client.files.retrieve(uploaded.id)
    assert retrieved.model_dump() == uploaded.model_dump()
    assert (await client.files.content(uploaded.id)).content == content


async def test_a_file_is_kept_for_the_retention_only(client: AsyncOpenAI, redis: Redis) -> None:
    """Its object and its content expire with retention.results_days, like the batches."""
    file_id = await upload(client, b"{}\n")
    assert 0 < await redis.ttl(keys.openai_file(file_id)) <= 7 * 86_400
    assert 0 < await redis.ttl(keys.openai_file_parts(file_id)) <= 7 * 86_400


async def test_a_deleted_file_is_gone(client: AsyncOpenAI) -> None:
    """files.delete says deleted; after it, retrieve and content are 404s."""
    file_id = await upload(client, b"{}\n")
    deleted = await client.files.delete(file_id)
    assert (deleted.id, deleted.deleted) == (file_id, True)
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        await client.files.content(file_id)


async def test_unknown_ids_are_404s_in_openais_shape(client: AsyncOpenAI) -> None:
    """An unknown file or batch: openai.NotFoundError, its message naming the id."""
    for call in (
        client.files.retrieve("file-nope"),
        client.files.content("file-nope"),
        client.files.delete("file-nope"),
        client.batches.retrieve("batch_nope"),
        client.batches.cancel("batch_nope"),
    ):
        with pytest.raises(openai.NotFoundError) as raised:
            await call
        assert "nope" in raised.value.message


async def test_a_purpose_other_than_batch_is_refused(client: AsyncOpenAI) -> None:
    """purpose must be batch: a 400 naming purpose."""
    with pytest.raises(openai.BadRequestError) as raised:
        await client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    assert raised.value.param == "purpose"
    assert "batch" in raised.value.message


def test_an_upload_over_the_limit_without_a_length_is_a_413(server: ApiServer, redis: Redis) -> None:
    """A chunked upload (no Content-Length) past the limit is refused while read, nothing kept."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(201):
            yield b"x" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx2.post(
        f"{server.url}/v1/files",
        content=body(),
        headers={**server.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


# --- batches ---


async def test_a_batch_runs_and_its_output_and_error_files_are_openais(
    client: AsyncOpenAI, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """Upload, create, a worker runs it: completed, counts, output file = succeeded lines, error file
    = the failed one, each in input order and in the Batch API's line format."""
    content = jsonl(
        request_line("q1", "one"), request_line("q2", "[sim:400] bad"), request_line("q3", "three")
    )
    batch = await create(client, content, metadata={"team": "search"})
    assert batch.status == "in_progress"
    assert batch.metadata == {"team": "search"}
    assert batch.request_counts is not None
    assert batch.request_counts.total == 3
    assert batch.in_progress_at is not None
    assert batch.in_progress_at >= batch.created_at
    assert batch.output_file_id is None

    await run_burst_worker(config, redis_url)

    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.completed_at is not None
    assert done.completed_at >= done.created_at
    assert done.output_file_id
    assert done.error_file_id
    assert done.usage is not None
    assert done.usage.total_tokens > 0
    output = (await client.files.content(done.output_file_id)).content
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert [line["custom_id"] for line in lines] == ["q1", "q3"]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in lines)
    assert lines[0]["response"]["body"]["choices"][0]["message"]["content"]
    errors = [
        json.loads(line) for line in (await client.files.content(done.error_file_id)).content.splitlines()
    ]
    assert [(line["custom_id"], line["response"]["status_code"]) for line in errors] == [("q2", 400)]
    output_file = await client.files.retrieve(done.output_file_id)
    assert (output_file.bytes, output_file.purpose) == (len(output), "batch_output")
    assert (await client.files.content(done.output_file_id)).content == output  # stable


async def test_the_output_and_error_files_are_askq_results_lines_split_by_success(
    client: AsyncOpenAI, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """Byte for byte the lines of `askq results --format openai-batch`: succeeded ones in the output
    file, the others in the error file, each in input order."""
    questions = ["one", "[sim:400] two", "thr\u00e9e \u2028", "[sim:422] four", "five"]
    content = jsonl(*(request_line(f"q{n}", question) for n, question in enumerate(questions)))
    batch = await create(client, content)
    await run_burst_worker(config, redis_url)
    done = await client.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    assert done.error_file_id is not None
    exported = askq("results", batch.id, "--format", "openai-batch")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.encode().splitlines(keepends=True)
    failed = [line for line in lines if b'"status_code": 200' not in line]
    output = (await client.files.content(done.output_file_id)).content
    assert output == b"".join(line for line in lines if line not in failed)
    assert (await client.files.content(done.error_file_id)).content == b"".join(failed)
    assert len(failed) == 2


async def test_the_batch_is_an_askq_batch_watchable_with_the_askq_routes(
    client: AsyncOpenAI, server: ApiServer, sim: Simulator
) -> None:
    """Its id is the askq batch's name: /api/jobs/BATCH:CUSTOM_ID shows a request's job."""
    batch = await create(client, jsonl(request_line("q1", "one")))
    response = httpx2.get(f"{server.url}/api/jobs/{batch.id}:q1", headers=server.headers)
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == ("q1", "queued")


async def test_a_file_with_bad_lines_gives_a_failed_batch_naming_each_line(
    client: AsyncOpenAI, redis: Redis
) -> None:
    """As `askq submit --format openai-batch` checks it: status failed, errors.data per line, nothing
    enqueued."""
    content = jsonl(
        request_line("ok", "fine"), "not json", {"custom_id": "x", "body": {}}, request_line("ok", "again")
    )
    batch = await create(client, content)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [error.line for error in batch.errors.data] == [2, 3, 4]
    assert "not valid JSON" in (batch.errors.data[0].message or "")
    assert "duplicate id 'ok'" in (batch.errors.data[2].message or "")
    assert all(error.code == "invalid_request" for error in batch.errors.data)
    assert await redis.zcard(keys.QUEUE) == 0
    assert not await redis.exists(keys.batch_record(batch.id))
    assert (await client.batches.retrieve(batch.id)).status == "failed"


async def test_a_file_that_is_not_text_gives_a_failed_batch(client: AsyncOpenAI) -> None:
    """A file-wide problem (not UTF-8) fails the batch too, with its message."""
    batch = await create(client, b'{"custom_id": "\xff"}\n')
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data
    assert "not UTF-8" in (batch.errors.data[0].message or "")


async def test_only_chat_completions_and_known_files_are_taken(client: AsyncOpenAI) -> None:
    """Another endpoint: 400 naming endpoint; an unknown input file: 404."""
    file_id = await upload(client, jsonl(request_line("a", "one")))
    with pytest.raises(openai.BadRequestError) as raised:
        await client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert raised.value.param == "endpoint"
    with pytest.raises(openai.NotFoundError):
        await client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )


async def test_a_window_other_than_24h_is_refused_naming_completion_window(client: AsyncOpenAI) -> None:
    """completion_window takes "24h" only, as OpenAI: anything else is a 400 naming it, no batch made."""
    file_id = await upload(client, jsonl(request_line("a", "one")))
    with pytest.raises(openai.BadRequestError) as raised:
        await client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="48h",  # type: ignore[arg-type]  # the stock client's type says 24h only
        )
    assert raised.value.param == "completion_window"
    assert "24h" in raised.value.message
    assert (await client.batches.list()).data == []


async def test_a_submit_that_breaks_fails_the_batch_rather_than_leaving_it_validating(
    client: AsyncOpenAI, redis: Redis
) -> None:
    """A raw Redis error in the submit (not an askq error): a 500, and the batch is failed, saying so."""
    await redis.set(keys.LINEAGE, "not a hash")  # the submit's first write then fails with WRONGTYPE
    file_id = await upload(client, jsonl(request_line("a", "one")))
    with pytest.raises(openai.InternalServerError):
        await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    [batch] = (await client.batches.list()).data
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [error.code for error in batch.errors.data] == ["server_error"]
    assert "server's log" in (batch.errors.data[0].message or "")
    assert "WRONGTYPE" not in (batch.errors.data[0].message or "")  # the cause is logged, not told


async def test_a_validating_batch_cancelled_says_cancelling(client: AsyncOpenAI, redis: Redis) -> None:
    """A cancel while the input file is still being submitted: cancelling (not validating) at once;
    cancelled, saying validation was interrupted, once its creator's lease lapses unended."""
    batch_id = f"batch_{'0' * 32}"
    fields = {"id": batch_id, "input_file_id": "file-x", "endpoint": "/v1/chat/completions"}
    fields |= {"completion_window": "24h", "metadata": "null", "created_at": "1700000000.0"}
    await redis.hset(keys.openai_batch(batch_id), mapping=fields)  # as a create mid-submit holds it
    await redis.set(keys.openai_batch_lease(batch_id), "creator", ex=60)
    await redis.zadd(keys.OPENAI_BATCHES, {batch_id: 1})
    cancelled = await client.batches.cancel(batch_id)
    assert (cancelled.status, cancelled.in_progress_at) == ("cancelling", None)
    assert cancelled.cancelling_at is not None
    assert (await client.batches.retrieve(batch_id)).status == "cancelling"

    await redis.delete(keys.openai_batch_lease(batch_id))  # its creator died before it could end it
    ended = await client.batches.retrieve(batch_id)
    assert (ended.status, ended.in_progress_at, ended.failed_at) == ("cancelled", None, None)
    assert ended.cancelled_at is not None
    assert ended.errors is not None
    assert ended.errors.data is not None
    assert "validation was interrupted" in (ended.errors.data[0].message or "")


async def test_a_cancelled_batch_ends_cancelled_with_its_requests_in_the_error_file(
    client: AsyncOpenAI, redis: Redis, sim: Simulator
) -> None:
    """cancel: queued requests are cancelled, the batch is cancelled, each request in the error file."""
    batch = await create(client, jsonl(request_line("a", "one"), request_line("b", "two")))
    cancelled = await client.batches.cancel(batch.id)
    assert cancelled.status in {"cancelling", "cancelled"}
    assert cancelled.cancelling_at is not None
    after = await client.batches.retrieve(batch.id)
    assert after.status == "cancelled"
    assert after.cancelled_at is not None
    assert after.request_counts is not None
    assert after.request_counts.failed == 2
    assert after.output_file_id is None
    assert after.error_file_id
    errors = (await client.files.content(after.error_file_id)).content.decode().splitlines()
    assert [json.loads(line)["error"]["code"] for line in errors] == ["cancelled", "cancelled"]
    assert await redis.zcard(keys.QUEUE) == 0


async def test_a_finished_batch_cannot_be_cancelled(client: AsyncOpenAI) -> None:
    """Cancelling a failed batch is a 409: nothing to stop."""
    batch = await create(client, b"not json\n")
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_list_pages_newest_first_with_after_and_limit(client: AsyncOpenAI, sim: Simulator) -> None:
    """batches.list: newest first, limit per page, after= the last id; the client's auto-paging sees all."""
    created = [(await create(client, jsonl(request_line("a", f"q{n}")))).id for n in range(5)]
    first = await client.batches.list(limit=2)
    assert [batch.id for batch in first.data] == created[::-1][:2]
    assert first.has_more is True
    second = await client.batches.list(limit=2, after=first.data[-1].id)
    assert [batch.id for batch in second.data] == created[::-1][2:4]
    assert [batch.id async for batch in client.batches.list(limit=2)] == created[::-1]
    with pytest.raises(openai.BadRequestError):
        await client.batches.list(limit=0)


# --- output files ---


async def test_output_files_are_fixed_once_written_through_retry_and_delete(
    client: AsyncOpenAI, server: ApiServer, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """The output and error files keep the bytes they had when the batch ended: an askq retry that
    changes the results, then deleting the askq batch, change neither; bytes matches the content."""
    batch = await create(client, jsonl(request_line("ok", "one"), request_line("flaky", "[sim:500x4] two")))
    await run_burst_worker(config, redis_url)
    done = await client.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    assert done.error_file_id is not None
    files = {
        file_id: (await client.files.content(file_id)).content
        for file_id in (done.output_file_id, done.error_file_id)
    }
    assert b'"flaky"' in files[done.error_file_id]

    retried = httpx2.post(f"{server.url}/api/batches/{batch.id}/retry", headers=server.headers)
    assert retried.json()["requeued"] == 1
    await run_burst_worker(config, redis_url)  # "flaky" succeeds this time
    assert b'"flaky"' in askq("results", batch.id, "--format", "openai-batch").stdout.encode()
    for file_id, written in files.items():
        assert (await client.files.content(file_id)).content == written
        assert (await client.files.retrieve(file_id)).bytes == len(written)

    deleted = httpx2.delete(f"{server.url}/api/batches/{batch.id}", headers=server.headers)
    assert deleted.status_code == 200
    for file_id, written in files.items():
        assert (await client.files.content(file_id)).content == written


async def test_two_servers_finalizing_at_once_write_the_output_once(
    client: AsyncOpenAI, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """Both servers read the ended batch at once: one output file, its lines once, bytes matching."""
    batch = await create(client, jsonl(*(request_line(f"q{n}", f"question {n}") for n in range(20))))
    await run_burst_worker(config, redis_url)
    with api_server(redis_url, token=TOKEN) as other:
        async with AsyncOpenAI(base_url=f"{other.url}/v1", api_key=TOKEN, max_retries=0) as second:
            views = await asyncio.gather(
                *(stock.batches.retrieve(batch.id) for stock in (client, second, client, second))
            )
    assert {view.output_file_id for view in views} - {None} == {
        openai_files.output_file_id(batch.id, "output")
    }
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.output_file_id is not None
    output = (await client.files.content(done.output_file_id)).content
    assert [json.loads(line)["custom_id"] for line in output.splitlines()] == [f"q{n}" for n in range(20)]
    assert (await client.files.retrieve(done.output_file_id)).bytes == len(output)


async def test_output_files_expire_with_the_retention_when_the_batch_has_no_ttl(
    client: AsyncOpenAI, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig
) -> None:
    """A batch key without a TTL (-1): its output file is kept for retention.results_days, not 1 s."""
    batch = await create(client, jsonl(request_line("a", "one")))
    await run_burst_worker(config, redis_url)
    await redis.persist(keys.openai_batch(batch.id))
    done = await client.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    output_file = await client.files.retrieve(done.output_file_id)
    assert output_file.expires_at == output_file.created_at + 7 * 86_400
    assert await redis.ttl(keys.openai_file(done.output_file_id)) > 6 * 86_400
