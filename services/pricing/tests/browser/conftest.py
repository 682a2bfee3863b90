"""Fixtures for the trading hall's browser tests: one Chromium for each test module, a fresh hall
(the pricing API with its pages and board feed) and a fresh browser context (its own
localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)
from pricing_browser_kit import Hall, Traffic, start_hall

from melon_devkit.browser import launch_chromium

expect.set_options(timeout=4_000)


@pytest.fixture
def hall() -> Iterator[Hall]:
    yield from start_hall()


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
def screen(request: pytest.FixtureRequest) -> tuple[int, int]:
    """The viewport, width x height; a test parametrizes it indirectly for another screen."""
    size: tuple[int, int] = getattr(request, "param", (1366, 900))
    return size


@pytest.fixture
def context(browser: Browser, hall: Hall, screen: tuple[int, int]) -> Iterator[BrowserContext]:
    width, height = screen
    context = browser.new_context(
        base_url=hall.url,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": width, "height": height},
    )
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
    """The merchant API calls the page makes, as the browser sent them."""
    return Traffic(page)


def watched(page: Page) -> Iterator[Page]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx answer and every cut connection; the tests provoke
        # refusals and lost answers on purpose.
        expected = ("the server responded with a status of", "net::ERR_CONNECTION_RESET")
        if message.type == "error" and not any(text in message.text for text in expected):
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    assert not problems, problems
