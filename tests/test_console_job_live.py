"""The job page follows a job live, in a real headless Chromium against a real `askq serve`, worker and
simulator: opened mid-answer, across a killed and restarted server, after the browser gave up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Route, expect
from redis.asyncio import Redis

from common.config import AskqConfig
from common.events import EventType
from producer.job_status import job_status
from tests.api_server import ApiServer, api_server, free_port
from tests.conftest import Simulator
from tests.helpers import eventually, logged_events, run_burst_worker
from tests.job_pages import SLOW, open_job, stream_ended, submit_question, text_of, watched


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


@pytest.fixture
async def dialogs() -> list[str]:
    return []


@pytest.fixture
async def page(chromium: Browser, dialogs: list[str]) -> AsyncIterator[Page]:
    async with watched(chromium, dialogs) as opened:
        yield opened


async def _streaming(redis: Redis, job_id: str) -> bool:
    return sum(event.type is EventType.DELTA for event in await logged_events(redis, job_id)) >= 3


async def test_a_page_opened_mid_answer_shows_it_from_its_first_word_then_live(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Opened mid-stream: a prefix of the answer at once, growing as it streams, ending as stored."""
    sim.configure(**SLOW)
    job_id = await submit_question(redis, config, write, "Tell me a long story")
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    await eventually(lambda: _streaming(redis, job_id), timeout_s=30)
    await open_job(page, server, job_id)
    await stream_ended(page)
    await worker
    answer = (await job_status(redis, job_id)).answer
    assert answer
    assert await text_of(page, "#answer") == answer
    seen: list[str] = await page.evaluate("window.answerSeen")
    assert [text for text in seen if not answer.startswith(text)] == []  # from its first word, never off
    assert len(seen[0]) < len(answer)  # the page came mid-answer ...
    assert len(seen) >= 3  # ... and it grew as the answer streamed
    await expect(page.locator("#job-state")).to_have_text("succeeded")
    await expect(page.locator("#timeline .start")).to_have_count(1)
    await expect(page.locator("#ttft")).not_to_have_text("—")


async def test_the_page_resumes_after_the_server_is_killed_and_restarted(
    chromium: Browser,
    dialogs: list[str],
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Server killed mid-answer, back on its port: the page reconnects itself, no event twice, text exact."""
    sim.configure(**{**SLOW, "answer_tokens": 400})  # still streaming once the new server listens
    port = free_port()
    job_id = await submit_question(redis, config, write, "Tell me a long story")
    async with watched(chromium, dialogs) as page, _serving(redis_url, port) as first:
        messages, requests = await _record_streams(page)
        worker = asyncio.create_task(run_burst_worker(config, redis_url))
        await open_job(page, first, job_id)
        await expect(page.locator("#answer")).not_to_be_empty()
        os.kill(first.pid, signal.SIGKILL)
        await expect(page.locator("#live-state")).to_have_attribute("data-connection", "reconnecting")
        async with _serving(redis_url, port):
            await stream_ended(page)
            await worker
        answer = (await job_status(redis, job_id)).answer
        assert answer
        assert await text_of(page, "#answer") == answer
        seqs = [data["seq"] for data in (json.loads(m["data"]) for m in messages) if "seq" in data]
        assert seqs == sorted(set(seqs))  # no event came twice, across the restart
        resumed = [headers.get("last-event-id") for headers in requests[1:]]
        assert resumed, requests
        assert all(resumed), requests  # each reconnect said where it was
        later = {m["requestId"] for m in messages} - {messages[0]["requestId"]}
        assert any(m["eventName"] == "delta" and m["requestId"] in later for m in messages)  # mid-answer


async def test_a_stream_the_browser_gave_up_on_is_read_again_and_nothing_doubles(
    chromium: Browser,
    dialogs: list[str],
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """An error answer stops EventSource: the page opens the stream anew, skips what it had, ends exact."""
    sim.configure(**{**SLOW, "answer_tokens": 400})
    port = free_port()
    job_id = await submit_question(redis, config, write, "Tell me a long story")
    asked: list[str] = []

    async def refuse_the_first_resume(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) == 2:  # the browser's first reconnect: an error, as a server without Redis answers
            await route.fulfill(status=503, content_type="application/json", body='{"error": {}}')
        else:
            await route.continue_()

    async with watched(chromium, dialogs) as page, _serving(redis_url, port) as first:
        messages, _ = await _record_streams(page)
        await page.route("**/events", refuse_the_first_resume)
        worker = asyncio.create_task(run_burst_worker(config, redis_url))
        await open_job(page, first, job_id)
        await expect(page.locator("#answer")).not_to_be_empty()
        os.kill(first.pid, signal.SIGKILL)
        await eventually(lambda: _more_than(asked, 2))  # refused, then opened anew by the page
        async with _serving(redis_url, port):
            await stream_ended(page)
            await worker
        answer = (await job_status(redis, job_id)).answer
        assert answer
        assert await text_of(page, "#answer") == answer
        seqs = [data["seq"] for data in (json.loads(m["data"]) for m in messages) if "seq" in data]
        assert len(seqs) > len(set(seqs))  # the stream was read again from its start: the page skipped those
        await expect(page.locator("#timeline .start")).to_have_count(1)


async def _more_than(items: list[str], count: int) -> bool:
    return len(items) > count


@contextlib.asynccontextmanager
async def _serving(redis_url: str, port: int) -> AsyncIterator[ApiServer]:
    """``askq serve`` on ``port``, started and stopped off the event loop (the worker runs on it)."""
    with contextlib.ExitStack() as stack:
        yield await asyncio.to_thread(stack.enter_context, api_server(redis_url, port=port))
        await asyncio.to_thread(stack.close)


async def _record_streams(page: Page) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """What Chromium itself received on the page's event streams, and the headers it sent for each."""
    cdp = await page.context.new_cdp_session(page)
    messages: list[dict[str, Any]] = []
    requests: list[dict[str, str]] = []

    def sent(extra: dict[str, Any]) -> None:  # the headers as sent, Last-Event-ID among them
        headers = {name.lower(): value for name, value in extra["headers"].items()}
        if headers.get("accept") == "text/event-stream":
            requests.append(headers)

    cdp.on("Network.eventSourceMessageReceived", lambda message: messages.append(message))
    cdp.on("Network.requestWillBeSentExtraInfo", sent)
    await cdp.send("Network.enable")
    return messages, requests
