"""`GET /api/batches/{batch}/items` over real HTTP, and the status fields the batch page reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from redis.asyncio import Redis

from common.config import AskqConfig
from common.status import JobState
from producer.batch_items import SCAN_MAX, item_page
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.conftest import Simulator
from tests.helpers import run_burst_worker

MIXED = [
    {"id": "a", "question": "First?"},
    {"id": "b", "question": "[sim:400] Refused"},
    {"id": "c", "question": "[sim:500x1] " + "Long question. " * 40},
    {"id": "d", "question": "[sim:400] Refused too"},
    {"id": "e", "question": "Fifth?"},
]


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as server:
        yield server


def items(server: ApiServer, batch: str, **params: str) -> httpx2.Response:
    return httpx2.get(f"{server.url}/api/batches/{batch}/items", params=params)


async def _submit(
    redis: Redis, config: AskqConfig, write: Any, batch: str, lines: list[dict[str, Any]]
) -> None:
    path = write(f"{batch}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    await submit_file(redis, path, config, batch=batch)


async def test_items_come_a_page_at_a_time_in_input_order(
    served: ApiServer, redis: Redis, config: AskqConfig, write: Any
) -> None:
    """limit=2 over five items: pages 0-1, 2-3, 4, each saying where the next begins."""
    await _submit(redis, config, write, "pages", MIXED)
    first = items(served, "pages", limit="2").json()
    assert [(item["index"], item["id"]) for item in first["data"]] == [(0, "a"), (1, "b")]
    assert (first["next_after"], first["has_more"], first["total"]) == (1, True, 5)
    assert first["data"][0] | {"question": "First?"} == {
        "index": 0,
        "id": "a",
        "job_id": "pages:a",
        "state": "queued",
        "question": "First?",
        "answer": None,
        "error": None,
        "attempts": 0,
        "finished_at": None,
    }
    second = items(served, "pages", limit="2", after="1").json()
    assert [item["id"] for item in second["data"]] == ["c", "d"]
    assert len(second["data"][0]["question"]) == 300  # cut: the job has the whole
    last = items(served, "pages", limit="2", after="3").json()
    assert [item["id"] for item in last["data"]] == ["e"]
    assert (last["next_after"], last["has_more"]) == (None, False)


async def test_items_filtered_by_state(
    served: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """?state=failed lists the two refused items with their errors; succeeded ones have their answers."""
    await _submit(redis, config, write, "mixed", MIXED)
    await run_burst_worker(config, redis_url)
    failed = items(served, "mixed", state="failed").json()
    assert [item["id"] for item in failed["data"]] == ["b", "d"]
    assert all("HTTP 400" in item["error"] for item in failed["data"])
    assert (failed["next_after"], failed["scanned"]) == (None, 5)
    succeeded = items(served, "mixed", state="succeeded", limit="1").json()
    assert [item["id"] for item in succeeded["data"]] == ["a"]
    assert succeeded["data"][0]["answer"]
    assert succeeded["next_after"] == 0
    rest = items(served, "mixed", state="succeeded", after="0").json()
    assert [(item["id"], item["attempts"]) for item in rest["data"]] == [("c", 2), ("e", 1)]


async def test_a_filtered_page_reads_a_bounded_number_of_states(
    redis: Redis, config: AskqConfig, write: Any
) -> None:
    """Past SCAN_MAX items with none matching, a page comes back empty with where to go on; the next
    page finishes the list; a match past the bound is found from there."""
    lines = [{"id": f"q{i}", "question": f"Question {i}?"} for i in range(SCAN_MAX + 200)]
    await _submit(redis, config, write, "big", lines)
    first = await item_page(redis, "big", state=JobState.FAILED, limit=10)
    assert (first.items, first.scanned, first.next_after) == ([], SCAN_MAX, SCAN_MAX - 1)
    rest = await item_page(redis, "big", state=JobState.FAILED, after=first.next_after, limit=10)
    assert (rest.items, rest.scanned, rest.next_after) == ([], 200, None)
    queued = await item_page(redis, "big", state=JobState.QUEUED, after=SCAN_MAX + 100, limit=2)
    assert [item["index"] for item in queued.items] == [SCAN_MAX + 101, SCAN_MAX + 102]


async def test_unknown_batch_and_bad_parameters(
    served: ApiServer, redis: Redis, config: AskqConfig, write: Any
) -> None:
    """An unknown batch is a 404 naming it; a state that is none, a negative `after`, a zero limit: 422."""
    missing = items(served, "nothing-here")
    assert missing.status_code == 404
    assert "nothing-here" in missing.json()["error"]["message"]
    await _submit(redis, config, write, "known", MIXED[:1])
    for params in ({"state": "exploded"}, {"after": "-1"}, {"limit": "0"}, {"limit": "201"}):
        response = items(served, "known", **params)
        assert response.status_code == 422, params
        assert response.json()["error"]["param"] == next(iter(params)), response.text


async def test_status_has_errors_first_tokens_halt_and_providers(
    served: ApiServer, redis: Redis, redis_url: str, sim: Simulator, config: AskqConfig, write: Any
) -> None:
    """`GET /api/batches/{batch}` carries the batch page's new fields: errors, first tokens, halt."""
    await _submit(redis, config, write, "fields", MIXED)
    await run_burst_worker(config, redis_url)
    status = httpx2.get(f"{served.url}/api/batches/fields").json()
    assert status["errors"] == [
        {"reason": "HTTP 400", "retried": 0, "failed": 2},
        {"reason": "HTTP 500", "retried": 1, "failed": 0},
    ]
    assert status["first_token_ms"]["p50"] is not None
    assert status["first_token_ms"]["p50"] <= status["first_token_ms"]["p95"]
    assert (status["halt"], status["providers"]) == (None, [])
