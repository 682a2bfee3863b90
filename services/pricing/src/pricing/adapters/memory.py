"""Giving memory back to the system after many board watchers have left.

Two thousand watchers leaving free every Python object they held (``tracemalloc`` counts the
API back at its size before they came), yet the process keeps its peak: the C allocator holds
the freed pages for reuse. ``MemoryRelease`` watches the number of watchers and, once it has
fallen by ``drop`` from its peak, asks glibc to return what it can (``malloc_trim``), at most
once every ``every_s`` seconds. Where there is no glibc, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

log = logging.getLogger(__name__)

RELEASES = Counter(
    "melon_pricing_memory_releases", "Times freed memory was handed back after watchers left"
)


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return lambda: trim(0)


def release_freed_memory() -> None:
    """Collect garbage and hand the C allocator's free pages back to the system."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim()


class MemoryRelease:
    """Releases freed memory when the watchers fell by ``drop`` from their peak."""

    def __init__(
        self,
        count: Callable[[], int],
        drop: int = 100,
        every_s: float = 10.0,
        release: Callable[[], None] = release_freed_memory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._drop = drop
        self._every_s = every_s
        self._release = release
        self._clock = clock
        self._peak = 0
        self._last = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-release", daemon=True)

    def check(self) -> bool:
        """Look at the watchers once; True when memory was released."""
        now = self._clock()
        current = self._count()
        self._peak = max(self._peak, current)
        if self._peak - current < self._drop or now - self._last < self._every_s:
            return False
        log.info("%d board watchers left; handing freed memory back", self._peak - current)
        self._release()
        RELEASES.inc()
        self._peak = current
        self._last = now
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.check()
