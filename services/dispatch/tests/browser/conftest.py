"""Fixtures for the truck yard's browser tests: one Chromium for each test module, a fresh yard
(the dispatch API with its pages) and a fresh browser context (its own localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dispatch_browser_kit import PRINT_SPY, Traffic, Yard, start_yard
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
def yard(request: pytest.FixtureRequest) -> Iterator[Yard]:
    """The yard; a test parametrizes it indirectly with ``{"auto_suggest": True}`` and the like."""
    options: dict[str, Any] = getattr(request, "param", {})
    yield from start_yard(**options)


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
def context(browser: Browser, yard: Yard) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=yard.url,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 1440, "height": 900},
    )
    context.add_init_script(PRINT_SPY)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page on the app that fails its test on a script error or an unexpected console error."""
    yield from watched(context.new_page())


@pytest.fixture
def traffic(page: Page) -> Traffic:
    """The decisions the page sends, as the browser sent them."""
    return Traffic(page)


def watched(page: Page) -> Iterator[Page]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx answer; the tests provoke refusals on purpose.
        expected = ("the server responded with a status of",)
        if message.type == "error" and not any(text in message.text for text in expected):
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    assert not problems, problems
