"""Fixtures for the console's browser tests: one Chromium for these tests, a fresh ingest app and a
fresh browser context (its own localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest_browser_kit import Hall, start_hall
from playwright.sync_api import Browser, BrowserContext, Page, expect

from melon_devkit.browser import PRINT_SPY, chromium_session, new_context, watched

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
    with chromium_session() as chromium:
        yield chromium


@pytest.fixture
def context(browser: Browser, hall: Hall) -> Iterator[BrowserContext]:
    with new_context(browser, hall.url, init_scripts=[PRINT_SPY]) as context:
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page on the app that fails its test on a script error or an unexpected console error."""
    with watched(context.new_page()) as page:
        yield page


@pytest.fixture
def bare_page(browser: Browser) -> Iterator[Page]:
    """A page with no app behind it, for HTML the test renders itself."""
    with (
        new_context(browser, screen=None, init_scripts=[PRINT_SPY]) as context,
        watched(context.new_page()) as page,
    ):
        yield page
