"""Fixtures for the truck yard's browser tests: one Chromium for each test module, a fresh yard
(the dispatch API with its pages) and a fresh browser context (its own localStorage) per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dispatch_browser_kit import Traffic, Yard, start_yard
from playwright.sync_api import Browser, BrowserContext, Page, expect

from melon_devkit.browser import PRINT_SPY, chromium_session, new_context, watched

expect.set_options(timeout=4_000)

YARD_SCREEN = (1440, 900)
"""The yard office's screen, wider than the hall's default."""


@pytest.fixture
def yard(request: pytest.FixtureRequest) -> Iterator[Yard]:
    """The yard; a test parametrizes it indirectly with ``{"auto_suggest": True}`` and the like."""
    options: dict[str, Any] = getattr(request, "param", {})
    yield from start_yard(**options)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the main
    # thread while it is open, and later tests that call asyncio.run need it gone.
    with chromium_session() as chromium:
        yield chromium


@pytest.fixture
def context(browser: Browser, yard: Yard) -> Iterator[BrowserContext]:
    with new_context(browser, yard.url, YARD_SCREEN, init_scripts=[PRINT_SPY]) as context:
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page on the app that fails its test on a script error or an unexpected console error."""
    with watched(context.new_page()) as page:
        yield page


@pytest.fixture
def traffic(page: Page) -> Traffic:
    """The decisions the page sends, as the browser sent them."""
    return Traffic(page)
