"""Headless Chromium for the browser tests of every Melon Hall service.

The tests drive the operating system's Chromium (Debian's ``chromium`` package) through
Playwright; nothing here downloads a browser, so the suite runs on a machine without internet.
``MELON_CHROMIUM`` points at another binary when the browser lives elsewhere. The page tests of
every service open their browser, contexts and watched pages through the helpers here.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Playwright,
        Request,
    )

DEFAULT_CHROMIUM = "/usr/bin/chromium"
ENV_VAR = "MELON_CHROMIUM"

CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, and quiet: no updates, sync or background requests leave the machine."""

SCREEN: tuple[int, int] = (1366, 900)
"""The viewport a page test gets unless it asks for another, width x height."""

REFUSED = "the server responded with a status of"
"""What Chromium logs as a console error for every 4xx/5xx answer; tests provoke refusals."""

PRINT_SPY = """
window.__prints = 0;
window.print = () => { window.__prints += 1; };
"""
"""Headless Chromium's print dialog does nothing visible; count the calls instead."""


class ChromiumMissing(RuntimeError):
    """No Chromium binary where the tests look for one."""


def chromium_path() -> Path:
    """The Chromium binary to drive: ``$MELON_CHROMIUM`` or Debian's ``/usr/bin/chromium``."""
    configured = os.environ.get(ENV_VAR) or DEFAULT_CHROMIUM
    found = shutil.which(configured)
    if found is None:
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default path"
        raise ChromiumMissing(
            f"no Chromium binary at {configured!r} ({source}); install Debian's chromium "
            f"package: make browser (or set {ENV_VAR} to a Chromium binary)"
        )
    return Path(found)


def launch_chromium(playwright: Playwright, extra_args: Sequence[str] = ()) -> Browser:
    """Launch headless Chromium from the system, never a downloaded one."""
    return playwright.chromium.launch(
        executable_path=str(chromium_path()),
        headless=True,
        args=[*CHROMIUM_ARGS, *extra_args],
    )


@contextmanager
def chromium_session(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """Playwright and one headless Chromium, both closed on leaving."""
    # Imported here: the devkit runs the hall without Playwright, only the page tests need it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_context(
    browser: Browser,
    base_url: str | None = None,
    screen: tuple[int, int] | None = SCREEN,
    init_scripts: Sequence[str] = (),
) -> Iterator[BrowserContext]:
    """A fresh context (its own localStorage) as the hall's screens are set: zh-CN, Beijing time.

    ``screen=None`` keeps Playwright's default viewport.
    """
    options: dict[str, Any] = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
    if base_url is not None:
        options["base_url"] = base_url
    if screen is not None:
        width, height = screen
        options["viewport"] = {"width": width, "height": height}
    context = browser.new_context(**options)
    for script in init_scripts:
        context.add_init_script(script)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def watched(page: Page, allow: Sequence[str] = (REFUSED,)) -> Iterator[Page]:
    """The page; on leaving, fails if it threw a script error or logged a console error that
    contains none of ``allow``."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(text in message.text for text in allow):
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    assert not problems, problems


@dataclass(frozen=True)
class Sent:
    """A request as the browser sent it."""

    method: str
    path: str
    authorization: str | None
    body: Any


class Traffic:
    """The requests a page sends that ``keep(method, path)`` selects, in order."""

    def __init__(self, page: Page, keep: Callable[[str, str], bool]) -> None:
        self.requests: list[Sent] = []
        self._keep = keep
        page.on("request", self._record)

    def _record(self, request: Request) -> None:
        path = urlsplit(request.url).path
        if self._keep(request.method, path):
            self.requests.append(
                Sent(
                    request.method,
                    path,
                    request.headers.get("authorization"),
                    request.post_data_json,
                )
            )

    def sent(self, path: str, method: str | None = None) -> list[Sent]:
        """What went to ``path``, by any method unless one is named."""
        return [
            sent
            for sent in self.requests
            if sent.path == path and (method is None or sent.method == method)
        ]


@dataclass
class Served:
    """An ASGI app served from a thread, for page tests; ``url`` is where it answers."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def serve(app: Any, name: str = "http") -> Served:
    """Run an ASGI app under uvicorn in a thread, on 127.0.0.1 and a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the app did not start under uvicorn")
        time.sleep(0.01)
    return Served(server, thread, f"http://127.0.0.1:{port}")
