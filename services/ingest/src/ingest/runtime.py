"""The running service: the lot use cases plus the background readers that feed them.

The projection rebuilds the read model from the topics; the grader starts only once the
projection has caught up, so it knows every lot graded before a restart and does not grade it
again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.service import LotService
from melon_contracts.transport import Reader, not_ready

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """Whether the service can answer truthfully; ``not_ready`` names each reader that is not."""

    not_ready: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.not_ready


@dataclass
class IngestService:
    """What ``bootstrap`` builds and the entrypoints run: use cases, readers, shutdown hooks."""

    lots: LotService
    projection: Reader | None = None
    grader: Reader | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _grader_started: threading.Event = field(default_factory=threading.Event, init=False)
    _starter: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        if self.projection is not None:
            self.projection.start()
        if self.grader is not None:
            self._starter = threading.Thread(
                target=self._start_grader_when_caught_up, name="ingest-grader-start", daemon=True
            )
            self._starter.start()

    def _start_grader_when_caught_up(self) -> None:
        projection = self.projection
        while projection is not None and not projection.caught_up.wait(timeout=0.2):
            if self._stopping.is_set() or projection.failure is not None:
                return
        if self.grader is not None and not self._stopping.is_set():
            self.grader.start()
            self._grader_started.set()

    def stop(self) -> None:
        """Stop the grader before the projection, and both before closing the publisher."""
        self._stopping.set()
        if self._starter is not None:
            self._starter.join()
        if self.grader is not None and self._grader_started.is_set():
            self.grader.stop()
        if self.projection is not None:
            self.projection.stop()
        for hook in self.on_stop:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)

    def health(self) -> Health:
        waiting: dict[str, str] = {}
        if self.projection is not None and (state := not_ready(self.projection)):
            waiting["projection"] = state
        if self.grader is not None:
            if not self._grader_started.is_set():
                waiting["grader"] = "waiting for the projection to catch up"
            elif state := not_ready(self.grader):
                waiting["grader"] = state
        return Health(waiting)
