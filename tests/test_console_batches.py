"""The console's batches page and sign-in, in a real headless Chromium against a real `askq serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from common import keys
from common.config import AskqConfig
from producer.submit import submit_file
from tests.api_server import ApiServer, api_server
from tests.browser import keep_screenshot, page_of

TOKEN = "console-test-token-0123456789"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(redis_url: str) -> Iterator[ApiServer]:
    with api_server(redis_url, token=TOKEN) as running:
        yield running


@pytest.fixture
async def page(chromium: Browser) -> AsyncIterator[Page]:
    async with page_of(chromium) as opened:
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        yield opened
        assert errors == [], f"the page's scripts failed: {errors}"


async def test_lists_batches_with_progress(
    server: ApiServer, page: Page, redis: Redis, config: AskqConfig, write
) -> None:
    """A submitted batch is listed with its progress, and one submitted later appears without a reload."""
    await submit_file(redis, write("first.jsonl", '{"id":"a","question":"one"}\n'), config, batch="first")
    await page.goto(server.url + "/")
    row = page.locator("tr[data-batch=first]")
    await expect(row.locator(".done")).to_have_text("0 / 1")
    await submit_file(redis, write("later.jsonl", '{"id":"b","question":"two"}\n'), config, batch="later")
    await expect(page.locator("tr[data-batch=later] a")).to_have_attribute("href", "/batches/later")
    await keep_screenshot(page, "batches.png")


async def test_bad_upload_lists_lines_and_enqueues_nothing(
    server: ApiServer, page: Page, redis: Redis, tmp_path: Path
) -> None:
    """A file with bad lines shows each line's number and problem; no batch is created."""
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"id":"a","question":"fine"}\n{not json\n{"id":"c","question":""}\n', encoding="utf-8")
    await page.goto(server.url + "/")
    await page.set_input_files("input[name=file]", str(bad))
    await page.fill("input[name=batch]", "broken")
    await page.click("#upload button[type=submit]")
    problems = page.locator("#upload-problems li")
    await expect(problems).to_have_count(2)
    await expect(problems.nth(0)).to_contain_text("line 2")
    await expect(problems.nth(1)).to_contain_text("line 3: question is empty")
    assert not await redis.exists(keys.batch_record("broken"))
    await keep_screenshot(page, "upload-problems.png")


async def test_good_upload_opens_its_batch(
    server: ApiServer, page: Page, redis: Redis, tmp_path: Path
) -> None:
    """A good file is submitted under the name typed, and the browser lands on its batch's page."""
    good = tmp_path / "good.txt"
    good.write_text("What is Redis?\n서울의 인구는?\n", encoding="utf-8")
    await page.goto(server.url + "/")
    await page.set_input_files("input[name=file]", str(good))
    await page.fill("input[name=batch]", "uploaded")
    await page.click("#upload button[type=submit]")
    await page.wait_for_url(server.url + "/batches/uploaded")
    assert await redis.llen(keys.batch_items("uploaded")) == 2


async def test_token_server_sends_browser_to_login(guarded: ApiServer, page: Page) -> None:
    """With a token, a page asks for it; a wrong one is refused, the right one opens the page asked for."""
    await page.goto(guarded.url + "/batches/none")
    await expect(page).to_have_url(guarded.url + "/login?next=%2Fbatches%2Fnone")
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_have_text("That is not this server's token.")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(guarded.url + "/batches/none")
    await expect(page.locator("h1")).to_have_text("No such batch")
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("askq_token", True, "Strict")]


async def test_sign_out_forgets_the_token(guarded: ApiServer, page: Page) -> None:
    """Sign out removes the cookie: the next page asks for the token again."""
    await page.goto(guarded.url + "/login")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Batches")
    await page.click("form.signout button")
    await expect(page).to_have_url(guarded.url + "/login")
    assert await page.context.cookies() == []
    await page.goto(guarded.url + "/")
    await expect(page).to_have_url(guarded.url + "/login?next=%2F")
