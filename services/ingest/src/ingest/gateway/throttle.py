"""At most one log line per interval for things that can happen hundreds of times a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Says whether to log now, and how many occurrences were held back since the last line."""

    def __init__(self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._held = 0
        self._lock = threading.Lock()

    def ready(self) -> int | None:
        """None to stay quiet; otherwise the count held back since the last line logged."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval_s:
                self._held += 1
                return None
            held, self._held, self._last = self._held, 0, now
            return held
