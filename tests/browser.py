"""A real headless Chromium for the console's tests, driven by Playwright's async API.

The browser is the system's (Debian's ``chromium``; ``ASKQ_CHROMIUM`` names another), never one
Playwright downloads: nothing but the package registries is reachable. Without one the browser
tests skip, unless ``ASKQ_REQUIRE_BROWSER`` is set (``dev.py test`` sets it: CI fails instead).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

FLAGS = [
    # What this closed machine needs: no sandbox as root, and no calls home (refused, many at once).
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
"""Where ``keep_screenshot`` writes, with ``ASKQ_SCREENSHOTS`` set: the console's docs page shows them."""


def chromium() -> str:
    found = os.environ.get("ASKQ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("ASKQ_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH (apt-get install chromium, or set ASKQ_CHROMIUM)")
        pytest.skip("no chromium on PATH: the console's browser tests need one")
    return found


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def page_of(
    running: Browser, *, width: int = 1200, height: int = 800, dark: bool = False
) -> AsyncIterator[Page]:
    """A fresh context (no cookies) and page; console errors fail the test that reads them."""
    context = await running.new_context(
        viewport={"width": width, "height": height},
        color_scheme="dark" if dark else "light",
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def keep_screenshot(page: Page, name: str) -> None:
    """The page as docs/console/NAME, when ``ASKQ_SCREENSHOTS`` is set (`ASKQ_SCREENSHOTS=1 python3
    dev.py test tests/test_console_*.py`); otherwise nothing, so a test run leaves the tree as it was."""
    if os.environ.get("ASKQ_SCREENSHOTS"):
        await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
