"""The console's job page in a real headless Chromium, against a real `askq serve`, worker and simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from common.config import AskqConfig
from common.events import EventType
from producer.job_status import job_status
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server, free_port
from tests.browser import SCREENSHOTS, browser, page_of
from tests.conftest import Simulator
from tests.helpers import eventually, keeping_events, logged_events, run_burst_worker
from tests.knowledge_helpers import build_base, menu_config, questions_file

SLOW = {"ttft_ms": 20, "tokens_per_s": 40, "answer_tokens": 300}
"""An answer that streams for several seconds: the page opens, or the server restarts, in its middle."""
HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(1)><b>markup</b> & &amp; "quoted"'
WATCH = """
// Every text the answer showed, as it changed; and any policy violation (an inline script or style).
window.answerSeen = [];
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.violations.push(e.violatedDirective));
new MutationObserver(() => {
  const node = document.getElementById("answer");
  const seen = window.answerSeen;
  if (node && node.textContent && seen[seen.length - 1] !== node.textContent) seen.push(node.textContent);
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with browser() as running:
        yield running


@pytest.fixture
async def dialogs() -> list[str]:
    return []


@contextlib.asynccontextmanager
async def watched(chromium: Browser, dialogs: list[str], **options: Any) -> AsyncIterator[Page]:
    """A page whose script errors, policy violations and dialogs fail the test (dialogs: in ``dialogs``)."""
    async with page_of(chromium, **options) as opened:
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        opened.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await opened.add_init_script(WATCH)
        yield opened
        assert errors == [], f"the page's scripts failed: {errors}"
        assert await opened.evaluate("window.violations") == []


@pytest.fixture
async def page(chromium: Browser, dialogs: list[str]) -> AsyncIterator[Page]:
    async with watched(chromium, dialogs) as opened:
        yield opened


async def _submit(
    redis: Redis, config: AskqConfig, write: Any, question: str, item: str = "q", job_type: str | None = None
) -> str:
    line = json.dumps({"id": item, "question": question}, ensure_ascii=False)
    await submit_file(redis, write("q.jsonl", line + "\n"), config, batch="page", job_type=job_type)
    return f"page:{item}"


async def _open(page: Page, server: ApiServer, job_id: str) -> None:
    await page.goto(f"{server.url}/jobs/{quote(job_id, safe='')}")


async def _ended(page: Page) -> None:
    """The page's stream ended (its `end` event): what it shows is final."""
    await expect(page.locator("#job")).to_have_attribute("data-stream", "ended", timeout=60_000)


async def _text(page: Page, selector: str) -> str:
    text: str = await page.locator(selector).evaluate("node => node.textContent")
    return text


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
    job_id = await _submit(redis, config, write, "Tell me a long story")
    worker = asyncio.create_task(run_burst_worker(config, redis_url))
    await eventually(lambda: _streaming(redis, job_id), timeout_s=30)
    await _open(page, server, job_id)
    await _ended(page)
    await worker
    answer = (await job_status(redis, job_id)).answer
    assert answer
    assert await _text(page, "#answer") == answer
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
    job_id = await _submit(redis, config, write, "Tell me a long story")
    async with watched(chromium, dialogs) as page, _serving(redis_url, port) as first:
        messages, requests = await _record_streams(page)
        worker = asyncio.create_task(run_burst_worker(config, redis_url))
        await _open(page, first, job_id)
        await expect(page.locator("#answer")).not_to_be_empty()
        os.kill(first.pid, signal.SIGKILL)
        await expect(page.locator("#live-state")).to_have_attribute("data-connection", "reconnecting")
        async with _serving(redis_url, port):
            await _ended(page)
            await worker
        answer = (await job_status(redis, job_id)).answer
        assert answer
        assert await _text(page, "#answer") == answer
        seqs = [data["seq"] for data in (json.loads(m["data"]) for m in messages) if "seq" in data]
        assert seqs == sorted(set(seqs))  # no event came twice, across the restart
        resumed = [headers.get("last-event-id") for headers in requests[1:]]
        assert resumed, requests
        assert all(resumed), requests  # each reconnect said where it was
        later = {m["requestId"] for m in messages} - {messages[0]["requestId"]}
        assert any(m["eventName"] == "delta" and m["requestId"] in later for m in messages)  # mid-answer


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


async def test_a_hostile_question_answer_and_id_are_shown_as_text(
    server: ApiServer,
    page: Page,
    dialogs: list[str],
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Markup in the id, question and streamed answer: the same characters shown, no element, no dialog."""
    question = f"[sim:echo]{HOSTILE}"
    job_id = await _submit(redis, config, write, question, item='<i>x</i>"&')
    await _open(page, server, job_id)  # queued: the answer comes as deltas, through the script
    await expect(page.locator("#job-state")).to_have_text("queued")
    await run_burst_worker(config, redis_url)
    await _ended(page)
    stored = await job_status(redis, job_id)
    assert stored.answer == HOSTILE  # the simulator echoed it
    assert await _text(page, "#answer") == HOSTILE
    assert await _text(page, "#question") == question
    assert await _text(page, "h1") == job_id
    assert await page.locator("#job script, #job img, #job b, #job i").count() == 0
    assert dialogs == []
    assert job_id in await page.title()


async def test_a_korean_answer_renders_at_375_px_without_sideways_scrolling(
    server: ApiServer,
    chromium: Browser,
    dialogs: list[str],
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Korean question and answer, a long unbroken word: the same text, nothing wider than the phone."""
    long_word = "https://example.com/" + "가나다라마바사" * 12
    question = f"[sim:echo]서울의 인구는 몇 명인가요? 한강 남쪽과 북쪽을 나누어 설명해 주세요. {long_word}"
    job_id = await _submit(redis, config, write, question, item="서울")
    await run_burst_worker(config, redis_url)
    async with watched(chromium, dialogs, width=375, height=812) as page:
        await _open(page, server, job_id)
        await _ended(page)
        stored = await job_status(redis, job_id)
        assert await _text(page, "#answer") == stored.answer
        assert await _text(page, "#question") == question
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await page.screenshot(path=str(SCREENSHOTS / "job-375.png"), full_page=True)


async def test_a_failed_job_shows_each_retry_and_its_reason_then_the_error(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Followed live: a timeline entry per retry with its reason and wait, then the failure with its error."""
    config = keeping_events(config)  # to compare with what was logged
    job_id = await _submit(redis, config, write, "[sim:500x9] Will this work?")
    await _open(page, server, job_id)
    await run_burst_worker(config, redis_url)
    await _ended(page)
    stored = await job_status(redis, job_id)
    retries = [event for event in await logged_events(redis, job_id) if event.type is EventType.RETRY]
    assert stored.status == "failed"
    assert len(retries) == config.retry.attempts - 1
    entries = page.locator("#timeline .retry")
    await expect(entries).to_have_count(len(retries))
    for entry, retry in zip(await entries.all(), retries, strict=True):
        await expect(entry.locator(".detail")).to_have_text(retry.error or "")
        await expect(entry.locator(".what")).to_contain_text(f"Attempt {retry.attempt} failed, retrying in")
    await expect(page.locator("#timeline .failed")).to_contain_text(stored.error or "")
    assert await _text(page, "#error") == stored.error
    await expect(page.locator("#job-state")).to_have_text("failed")
    assert await _text(page, "#answer") == ""


async def test_a_retried_answer_shows_only_its_last_attempt_and_the_whole_timeline(
    server: ApiServer,
    chromium: Browser,
    dialogs: list[str],
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """A cut stream's text is replaced by the next attempt's; a page opened after the end replays it all."""
    config = keeping_events(config)
    sim.configure(ttft_ms=20, tokens_per_s=100, answer_tokens=60)
    job_id = await _submit(redis, config, write, "[sim:cut,500] Why do streams need ids?")
    async with watched(chromium, dialogs) as page:
        await _open(page, server, job_id)
        await run_burst_worker(config, redis_url)
        await _ended(page)
        stored = await job_status(redis, job_id)
        assert await _text(page, "#answer") == stored.answer
        await expect(page.locator("#timeline .retry")).to_have_count(2)
        await expect(page.locator("#timeline .succeeded")).to_have_count(1)
        await page.screenshot(path=str(SCREENSHOTS / "job.png"), full_page=True)
    async with watched(chromium, dialogs, dark=True) as page:
        await _open(page, server, job_id)
        await _ended(page)
        assert await _text(page, "#answer") == stored.answer
        await expect(page.locator("#timeline .retry")).to_have_count(2)
        await page.screenshot(path=str(SCREENSHOTS / "job-dark.png"), full_page=True)


async def test_a_knowledge_job_shows_its_sources_live_and_without_javascript(
    server: ApiServer,
    page: Page,
    chromium: Browser,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    tmp_path: Path,
) -> None:
    """The sources event fills the list, best first; once ended, the server renders them and the answer."""
    config = menu_config(tmp_path)
    await build_base(redis, config)
    questions = questions_file(tmp_path / "q.jsonl", ["wifi"])
    await submit_file(redis, questions, config, batch="kb", job_type="menu")
    await _open(page, server, "kb:wifi")
    await run_burst_worker(config, redis_url)
    await _ended(page)
    stored = await job_status(redis, "kb:wifi")
    shown = [f"{source.file}#{source.chunk}" for source in stored.sources or []]
    assert shown
    assert shown[0] == "kb/menu/wifi.md#0"
    await expect(page.locator("#sources code")).to_have_text(shown)
    context = await chromium.new_context(java_script_enabled=False)
    try:
        static = await context.new_page()
        await static.goto(f"{server.url}/jobs/kb%3Awifi")
        await expect(static.locator("#sources code")).to_have_text(shown)
        assert await _text(static, "#answer") == stored.answer
        await expect(static.locator("#job-state")).to_have_text("succeeded")
    finally:
        await context.close()


async def test_an_unknown_job_is_a_404_page_naming_it(server: ApiServer, page: Page, redis: Redis) -> None:
    """No such batch: a 404 page that says so, no stream."""
    response = await page.goto(f"{server.url}/jobs/nobatch%3Aq1")
    assert response is not None
    assert response.status == 404
    await expect(page.locator("h1")).to_have_text("No such job")
    await expect(page.locator(".error")).to_contain_text("nobatch")
