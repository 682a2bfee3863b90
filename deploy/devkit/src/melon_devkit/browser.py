"""Headless Chromium for the browser tests of every Melon Hall service.

The tests drive the operating system's Chromium (Debian's ``chromium`` package) through
Playwright; nothing here downloads a browser, so the suite runs on a machine without internet.
``MELON_CHROMIUM`` points at another binary when the browser lives elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

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
