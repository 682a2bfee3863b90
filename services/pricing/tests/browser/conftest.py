"""Fixtures for the trading hall's browser tests: one Chromium for each test module, a fresh hall
(the pricing API with its pages and board feed) and a fresh browser context (its own
localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pricing_browser_kit import Hall, Traffic, start_hall

from melon_devkit.browser import REFUSED, SCREEN, chromium_session, new_context, watched

expect.set_options(timeout=4_000)

ALLOWED_CONSOLE_ERRORS = (REFUSED, "net::ERR_CONNECTION_RESET")
"""Refusals and cut connections: the tests provoke both on purpose, and Chromium logs them."""


@pytest.fixture
def hall() -> Iterator[Hall]:
    yield from start_hall()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the main
    # thread while it is open, and later tests that call asyncio.run need it gone.
    with chromium_session() as chromium:
        yield chromium


@pytest.fixture
def screen(request: pytest.FixtureRequest) -> tuple[int, int]:
    """The viewport, width x height; a test parametrizes it indirectly for another screen."""
    size: tuple[int, int] = getattr(request, "param", SCREEN)
    return size


@pytest.fixture
def context(browser: Browser, hall: Hall, screen: tuple[int, int]) -> Iterator[BrowserContext]:
    with new_context(browser, hall.url, screen) as context:
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page on the app that fails its test on a script error or an unexpected console error."""
    with watched(context.new_page(), allow=ALLOWED_CONSOLE_ERRORS) as page:
        yield page


@pytest.fixture
def traffic(page: Page) -> Traffic:
    """The merchant API calls the page makes, as the browser sent them."""
    return Traffic(page)
