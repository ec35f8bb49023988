"""The console's batch page in a real headless Chromium against a real `askq serve`, worker and simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from common.config import AskqConfig, parse_config
from common.errors import RetryableProviderError
from common.status import JobState
from producer.batches import batch_status
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.browser import keep_screenshot, page_of
from tests.conftest import Simulator
from tests.helpers import results, run_burst_worker
from worker.answering.admission import GateMemory
from worker.answering.gate import ProviderGate

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_ANSWER = "<b>markup</b> & <script>alert(2)</script> 서울"
FAULTS = [
    {"id": "twice", "question": "[sim:500x2] 서울의 인구는?"},
    {"id": "refused", "question": "[sim:400] Refused every time"},
    {"id": "spent", "question": "[sim:500x4] More server errors than attempts"},
    {"id": HOSTILE_ID, "question": f"[sim:echo] {HOSTILE_ANSWER}"},
    {"id": "fine", "question": "What is Redis?"},
]


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


async def _watched(opened: Page) -> AsyncIterator[Page]:
    errors: list[str] = []
    dialogs: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("dialog", lambda dialog: dialogs.append(dialog.message))  # an alert() that ran
    yield opened
    assert errors == [], f"the page's scripts failed: {errors}"
    assert dialogs == [], f"the page ran a script from the data: {dialogs}"


@pytest.fixture
async def page(chromium: Browser) -> AsyncIterator[Page]:
    async with page_of(chromium) as opened:
        async for watched in _watched(opened):
            yield watched


async def _submit(
    redis: Redis, config: AskqConfig, write: Any, batch: str, lines: list[dict[str, Any]]
) -> None:
    path = write(f"{batch}.jsonl", "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    await submit_file(redis, path, config, batch=batch)


def count(page: Page, state: str) -> Any:
    return page.locator(f"[data-count={state}]")


async def test_counters_errors_and_hostile_text(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """The ended batch's counters, its errors by reason, and an id and answer of markup shown as text."""
    await _submit(redis, config, write, "faults", FAULTS)
    await run_burst_worker(config, redis_url)
    await page.goto(server.url + "/batches/faults")
    await expect(count(page, "succeeded")).to_have_text("3")
    await expect(count(page, "failed")).to_have_text("2")
    await expect(count(page, "failed")).to_have_class("some")  # in red
    await expect(page.locator("#errors li")).to_have_text(
        ["6 × HTTP 500 (1 failed)", "1 × HTTP 400 (1 failed)"]
    )
    await expect(page.locator("#gate-open")).to_be_visible()
    await expect(page.locator("#eta")).to_have_text("done")
    link = page.locator("#items tbody a").nth(3)
    await expect(link).to_have_text(HOSTILE_ID)
    assert unquote(await link.get_attribute("href") or "") == f"/jobs/faults:{HOSTILE_ID}"
    answer = page.locator("#items tbody tr").nth(3).locator(".answer-text")
    await expect(answer).to_have_text(HOSTILE_ANSWER)
    assert await page.locator("#items b, #items script, #follow b").count() == 0
    await page.reload()  # the same, as the server renders it before any script
    await expect(page.locator("#items tbody a").nth(3)).to_have_text(HOSTILE_ID)
    assert await page.locator("main b, main script").count() == 0


async def test_cancel_asks_first_then_cancels_the_queued_jobs(
    server: ApiServer, page: Page, redis: Redis, config: AskqConfig, write: Any
) -> None:
    """Cancel asks first (keeping it changes nothing), then cancels the queued jobs; retry requeues them."""
    await _submit(redis, config, write, "stop", [{"id": f"q{i}", "question": f"Q {i}?"} for i in range(4)])
    await page.goto(server.url + "/batches/stop")
    await expect(count(page, "queued")).to_have_text("4")
    await page.click("#cancel-button")
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#confirm-text")).to_have_text(
        "Cancel the 4 queued jobs of stop. Retry can queue them again."
    )
    await expect(page.locator("#confirm-option")).to_be_hidden()
    await page.keyboard.press("Enter")  # the focused button: keep it as it is
    await expect(dialog).to_be_hidden()
    assert (await batch_status(redis, "stop")).counts[JobState.QUEUED] == 4
    await page.click("#cancel-button")
    await page.click("#confirm-yes")
    await expect(page.locator("#action-result")).to_have_text(
        "4 queued jobs cancelled; 0 running jobs told to stop."
    )
    await expect(count(page, "cancelled")).to_have_text("4")
    await expect(count(page, "queued")).to_have_text("0")
    await expect(page.locator("#cancel-button")).to_be_disabled()
    await expect(page.locator("#items .state")).to_have_text(["cancelled"] * 4)
    assert (await batch_status(redis, "stop")).counts[JobState.CANCELLED] == 4
    await expect(count(page, "failed")).not_to_have_class("some")  # a 0 is not in red
    await page.click("#retry-button")  # none failed: the dialog offers the cancelled ones
    await expect(page.locator("#confirm-text")).to_have_text(
        "No job of stop failed; tick below to queue its cancelled jobs again."
    )
    await page.check("#confirm-cancelled")
    await page.click("#confirm-yes")
    await expect(page.locator("#action-result")).to_have_text("4 jobs queued again.")
    await expect(count(page, "queued")).to_have_text("4")


async def test_retry_requeues_the_failed_jobs(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """Retry, confirmed, queues the failed job again; a worker answers it and the counters follow."""
    await _submit(redis, config, write, "again", [{"id": "flaky", "question": "[sim:500x4] Fails once"}])
    await run_burst_worker(config, redis_url)
    await page.goto(server.url + "/batches/again")
    await expect(count(page, "failed")).to_have_text("1")
    await page.click("#retry-button")
    await expect(page.locator("#confirm-title")).to_have_text("Retry failed jobs?")
    await page.click("#confirm-yes")
    await expect(page.locator("#action-result")).to_have_text("1 job queued again.")
    await expect(count(page, "queued")).to_have_text("1")
    await expect(count(page, "failed")).to_have_text("0")
    await run_burst_worker(config, redis_url)  # the simulator's four 500s are spent: answered now
    await expect(count(page, "succeeded")).to_have_text("1")
    await expect(page.locator("#errors li")).to_have_text(["4 × HTTP 500 (1 failed)"])


async def test_items_filter_and_pages(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """60 items, 25 a page: next, next, previous; the failed filter lists only the failed ones."""
    lines = [
        {"id": f"i{n:02}", "question": f"[sim:400] No {n}" if n % 7 == 3 else f"Q {n}"} for n in range(60)
    ]
    await _submit(redis, config, write, "many", lines)
    await run_burst_worker(config, redis_url)
    await page.goto(server.url + "/batches/many")
    rows = page.locator("#items tbody tr")
    await expect(rows).to_have_count(25)
    await page.click("#items-next")
    await expect(rows.first.locator("a")).to_have_text("i25")
    await page.click("#items-next")
    await expect(rows).to_have_count(10)
    await expect(page.locator("#items-next")).to_be_hidden()
    await page.click("#items-previous")
    await expect(rows.first.locator("a")).to_have_text("i25")
    await expect(page).to_have_url(server.url + "/batches/many?after=24")
    await page.click("#items-first")
    await expect(rows.first.locator("a")).to_have_text("i00")
    await expect(page).to_have_url(server.url + "/batches/many")
    await page.select_option("#items-state", "failed")
    failed = [f"i{n:02}" for n in range(60) if n % 7 == 3]
    await expect(rows.locator("a")).to_have_text(failed)
    await expect(page).to_have_url(server.url + "/batches/many?state=failed")
    await page.reload()  # the address keeps the filter: the server renders the same list
    await expect(rows.locator("a")).to_have_text(failed)


async def test_follow_view_streams_running_jobs_text(
    server: ApiServer,
    chromium: Browser,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """While jobs stream, each one's panel grows word by word and ends as the stored answer; screenshots."""
    sim.configure(ttft_ms=50, tokens_per_s=30, answer_tokens=90)  # three seconds an answer
    lines = [{"id": f"story{n}", "question": f"Tell story {n}"} for n in range(3)]
    lines += [
        {"id": "서울", "question": "[sim:500x1] 서울의 인구는?"},
        {"id": "bad", "question": "[sim:400] No"},
        {"id": HOSTILE_ID, "question": f"[sim:echo] {HOSTILE_ANSWER}"},
    ]
    await _submit(redis, config, write, "live", lines)
    shots = [("batch.png", 1200, False), ("batch-dark.png", 1200, True), ("batch-375.png", 375, False)]
    async with page_of(chromium, width=1200, height=900) as opened:
        async for page in _watched(opened):
            await page.goto(server.url + "/batches/live")
            worker = asyncio.create_task(run_burst_worker(config, redis_url))
            panel = page.locator(".job-panel[data-job='live:story0']")
            await expect(panel.locator(".job-text")).not_to_have_text("")  # the first words came
            await expect(panel.locator(".state")).to_have_text("running")
            await expect(page.locator("#errors li")).to_have_count(1)  # the 400, counted as its job ended
            await keep_screenshot(page, shots[0][0])
            await worker
            answers = {row.job_id: row.answer for row in await results(redis, "live")}
            for n in range(3):
                done = page.locator(f".job-panel[data-job='live:story{n}']")
                await expect(done.locator(".state")).to_have_text("succeeded")
                await expect(done.locator(".job-text")).to_have_text(answers[f"live:story{n}"] or "")
            hostile = page.locator(".job-panel").filter(
                has=page.get_by_role("link", name=HOSTILE_ID, exact=True)
            )
            await expect(hostile.locator(".job-text")).to_have_text(HOSTILE_ANSWER)
            assert await page.locator("#follow b, #follow script").count() == 0
            await expect(count(page, "succeeded")).to_have_text("5")
    for name, width, dark in shots[1:]:
        async with page_of(chromium, width=width, height=900, dark=dark) as opened:
            async for page in _watched(opened):
                await page.goto(server.url + "/batches/live")
                await expect(page.locator("#errors li")).to_have_count(2)
                await keep_screenshot(page, name)


async def test_provider_gate_shows_a_halt_and_a_cooldown(
    server: ApiServer,
    page: Page,
    redis: Redis,
    redis_url: str,
    sim: Simulator,
    config: AskqConfig,
    write: Any,
) -> None:
    """A 401 halts the batch (the refusal quoted, its other jobs failed unsent); a 429's cooldown shows."""
    lines = [{"id": "key", "question": "[sim:401] Refused key"}, {"id": "other", "question": "Never sent"}]
    await _submit(redis, config, write, "halted", lines)
    await run_burst_worker(config, redis_url, max_jobs=1)  # one at a time: the 401 comes first
    gate = ProviderGate(redis, "halted", "api.example.test", parse_config({}), GateMemory())
    await gate.refused(RetryableProviderError("HTTP 429", status_code=429, retry_after_s=60.0))
    await page.goto(server.url + "/batches/halted")
    await expect(page.locator("#gate .gate-halt")).to_contain_text("Halted: its jobs are not sent. HTTP 401")
    await expect(page.locator("#gate .gate-cooldown")).to_contain_text(
        "api.example.test asked to hold off (429)"
    )
    await expect(page.locator("#errors li")).to_have_text(
        ["1 × HTTP 401 (1 failed)", "1 × not sent: batch halted (1 failed)"]
    )
