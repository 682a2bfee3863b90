"""Headless Chromium for the browser tests of every Melon Hall service.

The tests drive the operating system's Chromium (Debian's ``chromium`` package) through
Playwright; nothing here downloads a browser, so the suite runs on a machine without internet.
``MELON_CHROMIUM`` points at another binary when the browser lives elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
