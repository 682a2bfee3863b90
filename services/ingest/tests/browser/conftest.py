"""Fixtures for the console's browser tests: one Chromium for these tests, a fresh ingest app and a
fresh browser context (its own localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest_browser_kit import PRINT_SPY, Hall, start_hall
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from melon_devkit.browser import launch_chromium

expect.set_options(timeout=4_000)


@pytest.fixture
def hall() -> Iterator[Hall]:
    hall, served = start_hall()
    try:
        yield hall
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the main
    # thread while it is open, and later tests that call asyncio.run need it gone.
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser, hall: Hall) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=hall.url,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 1366, "height": 900},
    )
    context.add_init_script(PRINT_SPY)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page on the app that fails its test on a script error or an unexpected console error."""
    yield from _watched(context.new_page())


@pytest.fixture
def bare_page(browser: Browser) -> Iterator[Page]:
    """A page with no app behind it, for HTML the test renders itself."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    context.add_init_script(PRINT_SPY)
    try:
        yield from _watched(context.new_page())
    finally:
        context.close()


def _watched(page: Page) -> Iterator[Page]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx answer; the tests provoke refusals on purpose.
        if message.type == "error" and "the server responded with a status of" not in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    assert not problems, problems
