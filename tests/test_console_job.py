"""The console's job page in a real headless Chromium, against a real `askq serve`, worker and simulator:
what it shows (text as text, Korean at 375 px, a failed job's retries, sources) and its screenshots."""

from __future__ import annotations

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
from tests.api_server import ApiServer, api_server
from tests.browser import keep_screenshot
from tests.conftest import Simulator
from tests.helpers import keeping_events, logged_events, run_burst_worker
from tests.job_pages import open_job, stream_ended, submit_question, text_of, watched
from tests.knowledge_helpers import build_base, menu_config, questions_file

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(1)><b>markup</b> & &amp; "quoted"'


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
    job_id = await submit_question(redis, config, write, question, item='<i>x</i>"&')
    await open_job(page, server, job_id)  # queued: the answer comes as deltas, through the script
    await expect(page.locator("#job-state")).to_have_text("queued")
    await run_burst_worker(config, redis_url)
    await stream_ended(page)
    stored = await job_status(redis, job_id)
    assert stored.answer == HOSTILE  # the simulator echoed it
    assert await text_of(page, "#answer") == HOSTILE
    assert await text_of(page, "#question") == question
    assert await text_of(page, "h1") == job_id
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
    job_id = await submit_question(redis, config, write, question, item="서울")
    await run_burst_worker(config, redis_url)
    async with watched(chromium, dialogs, width=375, height=812) as page:
        await open_job(page, server, job_id)
        await stream_ended(page)
        stored = await job_status(redis, job_id)
        assert await text_of(page, "#answer") == stored.answer
        assert await text_of(page, "#question") == question
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await keep_screenshot(page, "job-375.png")


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
    job_id = await submit_question(redis, config, write, "[sim:500x9] Will this work?")
    await open_job(page, server, job_id)
    await run_burst_worker(config, redis_url)
    await stream_ended(page)
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
    assert await text_of(page, "#error") == stored.error
    await expect(page.locator("#job-state")).to_have_text("failed")
    assert await text_of(page, "#answer") == ""


async def test_an_ended_job_opened_later_shows_its_retries_from_the_record(
    server: ApiServer,
    chromium: Browser,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Rendered from the record (what a page opened once the events left the log starts from; here
    without JavaScript): each retry with its reason, then the end."""
    job_id = await submit_question(redis, config, write, "[sim:500x2] Third time lucky?")
    await run_burst_worker(config, redis_url)
    stored = await job_status(redis, job_id)
    assert (stored.status, stored.attempts) == ("succeeded", 3)
    context = await chromium.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{server.url}/jobs/{quote(job_id, safe='')}")
    entries = page.locator("#timeline .retry")
    await expect(entries).to_have_count(2)
    for number, entry in enumerate(await entries.all(), start=1):
        await expect(entry.locator(".what")).to_have_text(f"Attempt {number} failed, retried")
        await expect(entry.locator(".detail")).to_have_text("HTTP 500")
    await expect(page.locator("#timeline .summary")).to_have_text("Succeeded after 3 attempts")
    await context.close()


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
    job_id = await submit_question(redis, config, write, "[sim:cut,500] Why do streams need ids?")
    async with watched(chromium, dialogs) as page:
        await open_job(page, server, job_id)
        await run_burst_worker(config, redis_url)
        await stream_ended(page)
        stored = await job_status(redis, job_id)
        assert await text_of(page, "#answer") == stored.answer
        await expect(page.locator("#timeline .retry")).to_have_count(2)
        await expect(page.locator("#timeline .succeeded")).to_have_count(1)
        await keep_screenshot(page, "job.png")
    async with watched(chromium, dialogs, dark=True) as page:
        await open_job(page, server, job_id)
        await stream_ended(page)
        assert await text_of(page, "#answer") == stored.answer
        await expect(page.locator("#timeline .retry")).to_have_count(2)
        await keep_screenshot(page, "job-dark.png")


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
    await open_job(page, server, "kb:wifi")
    await run_burst_worker(config, redis_url)
    await stream_ended(page)
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
        assert await text_of(static, "#answer") == stored.answer
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
