"""The job page's tests' helpers: a watched page (script errors, policy violations, dialogs), a job to
show, and what the page shows."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from common.config import AskqConfig
from producer.submit import submit_file
from tests.api_server import ApiServer
from tests.browser import page_of

SLOW = {"ttft_ms": 20, "tokens_per_s": 40, "answer_tokens": 300}
"""An answer that streams for several seconds: the page opens, or the server restarts, in its middle."""
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


async def submit_question(
    redis: Redis, config: AskqConfig, write: Any, question: str, item: str = "q", job_type: str | None = None
) -> str:
    line = json.dumps({"id": item, "question": question}, ensure_ascii=False)
    await submit_file(redis, write("q.jsonl", line + "\n"), config, batch="page", job_type=job_type)
    return f"page:{item}"


async def open_job(page: Page, server: ApiServer, job_id: str) -> None:
    await page.goto(f"{server.url}/jobs/{quote(job_id, safe='')}")


async def stream_ended(page: Page) -> None:
    """The page's stream ended (its `end` event): what it shows is final."""
    await expect(page.locator("#job")).to_have_attribute("data-stream", "ended", timeout=60_000)


async def text_of(page: Page, selector: str) -> str:
    text: str = await page.locator(selector).evaluate("node => node.textContent")
    return text
