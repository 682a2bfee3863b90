"""The weigh stations' use cases: record a lot, grade it, keep the read model, answer queries.

Reader threads and HTTP request threads share one ``LotRegistry``; every touch of it holds
``_lock``, and no lock is held while waiting for the broker except ``_record_lock`` (see
``record``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass

from ingest import messages
from ingest.domain.commands import GradeLot, RecordLot
from ingest.domain.errors import LotAlreadyWeighed
from ingest.domain.grading import GradingProfile
from ingest.domain.lots import Applied, Lot, LotRegistry, accept_weighing
from melon_contracts.events import LotGraded, LotWeighed
from melon_contracts.topics import LOTS_GRADED, LOTS_WEIGHED
from melon_contracts.transport import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """A lot after ``record``; ``created`` is False when the request repeated an earlier one."""

    lot: Lot
    created: bool


class LotService:
    """Records, grades and looks up lots; safe to call from any thread."""

    def __init__(
        self,
        publisher: Publisher,
        stations: Collection[str],
        profile: GradingProfile,
        registry: LotRegistry | None = None,
    ) -> None:
        self._publisher = publisher
        self._stations = frozenset(stations)
        self._profile = profile
        self._registry = registry if registry is not None else LotRegistry()
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()

    def record(self, command: RecordLot) -> Recorded:
        """Publish a new weighing and apply it at once, so the operator reads their own write."""
        weighing = accept_weighing(command, self._stations)
        # Checking and publishing must not interleave between two requests for the same lot id,
        # or both would publish. Operators record a few lots a minute, so one at a time is cheap.
        with self._record_lock:
            with self._lock:
                existing = self._registry.check_new(weighing)
            if existing is not None:
                return Recorded(existing, created=False)
            event = messages.lot_weighed(weighing)
            self._publisher.publish(LOTS_WEIGHED, weighing.lot_id, event)
            with self._lock:
                applied = self._registry.apply_weighed(weighing, event.event_id, event.occurred_at)
                lot = self._registry.get(weighing.lot_id)
        if applied is Applied.CONFLICT:
            # Another instance's weighing of this lot id reached the topics while we published;
            # the first on the topic stands and the grader dead-letters ours.
            raise LotAlreadyWeighed(
                f"lot {weighing.lot_id!r} was weighed at {lot.weighing.station_id} at the same "
                f"time with different content; that weighing stands"
            )
        return Recorded(lot, created=True)

    def grade(self, command: GradeLot) -> Lot | None:
        """Grade a published weighing once; None when the lot already has its grade."""
        weighing = command.weighing
        with self._lock:
            applied = self._registry.apply_weighed(weighing, command.event_id, command.weighed_at)
            lot = self._registry.get(weighing.lot_id)
        if applied is Applied.CONFLICT:
            raise LotAlreadyWeighed(
                f"lot {weighing.lot_id!r} was first weighed by event {lot.event_id}; "
                f"event {command.event_id} weighs it again with different content"
            )
        if lot.grading is not None:
            return None
        grading = self._profile.grade(lot.weighing.brix)
        event = messages.lot_graded(lot, grading)
        self._publisher.publish(LOTS_GRADED, lot.lot_id, event)
        with self._lock:
            self._registry.apply_graded(lot.lot_id, grading, event.occurred_at)
            return self._registry.get(lot.lot_id)

    def apply(self, event: LotWeighed | LotGraded) -> Applied:
        """Fold an event from the topics into the read model; repeats change nothing."""
        with self._lock:
            if isinstance(event, LotWeighed):
                applied = self._registry.apply_weighed(
                    messages.weighing_of(event), event.event_id, event.occurred_at
                )
            else:
                applied = self._registry.apply_graded(
                    event.lot_id, messages.grading_of(event), event.occurred_at
                )
        if applied is Applied.CONFLICT:
            # The grader dead-letters the conflicting weighing once; the projection re-reads the
            # topic on every start, so it only notes it.
            log.warning(
                "ignored %s %s: lot %s was weighed before with other content",
                event.type,
                event.event_id,
                event.lot_id,
            )
        return applied

    def lot(self, lot_id: str) -> Lot:
        with self._lock:
            return self._registry.get(lot_id)

    def lots(self, limit: int) -> list[Lot]:
        with self._lock:
            return self._registry.latest(limit)
