"""Lots and the lot registry: the read model of what was weighed and graded.

The registry is rebuilt from the topics, so every change arrives as an event that may come twice
(at-least-once delivery) and in any order across the two topics. It therefore deduplicates by
event id and lot id, keeps the first weighing of a lot id (the topic's order decides), and holds a
grade that arrives before its weighing until the weighing comes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from ingest.domain.commands import RecordLot
from ingest.domain.errors import InvalidLot, LotAlreadyWeighed, UnknownLot, UnknownStation
from ingest.domain.grading import Grading
from melon_contracts.reference import check_variety
from melon_contracts.units import UnitError, kg_to_g

BRIX_MIN = 0.0
BRIX_MAX = 35.0
MAX_BRIX_READINGS = 100


@dataclass(frozen=True)
class Weighing:
    """What an operator recorded for a lot: its weight in grams and its Brix sample."""

    lot_id: str
    station_id: str
    farmer_id: str
    variety: str
    crates: int
    net_g: int
    brix: tuple[float, ...]
    operator_id: str


def accept_weighing(command: RecordLot, stations: Collection[str]) -> Weighing:
    """Check an operator's entry against the hall's rules and turn it into a weighing."""
    if command.station_id not in stations:
        known = ", ".join(sorted(stations))
        raise UnknownStation(f"unknown station {command.station_id!r}; stations: {known}")
    check_variety(command.variety)
    if command.crates < 1:
        raise InvalidLot(f"a lot has at least 1 crate, not {command.crates}")
    try:
        net_g = kg_to_g(command.net_kg)
    except UnitError as exc:
        raise InvalidLot(f"net weight: {exc}; weights are recorded to the gram") from exc
    if net_g <= 0:
        raise InvalidLot(f"net weight must be more than 0 kg, not {command.net_kg}")
    _check_brix(command.brix)
    return Weighing(
        lot_id=command.lot_id,
        station_id=command.station_id,
        farmer_id=command.farmer_id,
        variety=command.variety,
        crates=command.crates,
        net_g=net_g,
        brix=tuple(command.brix),
        operator_id=command.operator_id,
    )


def _check_brix(brix: tuple[float, ...]) -> None:
    if not 1 <= len(brix) <= MAX_BRIX_READINGS:
        raise InvalidLot(f"a sample has 1 to {MAX_BRIX_READINGS} Brix readings, not {len(brix)}")
    for reading in brix:
        if not math.isfinite(reading) or not BRIX_MIN <= reading <= BRIX_MAX:
            raise InvalidLot(f"Brix reading {reading} is outside {BRIX_MIN:g}-{BRIX_MAX:g}")


class LotStatus(StrEnum):
    """Where a lot is on its way through the weigh station."""

    WEIGHED = "weighed"
    GRADED = "graded"


@dataclass(frozen=True)
class Lot:
    """A weighed lot as the read model knows it, with its grade once it has one."""

    weighing: Weighing
    event_id: UUID
    weighed_at: datetime
    grading: Grading | None = None
    graded_at: datetime | None = None

    @property
    def lot_id(self) -> str:
        return self.weighing.lot_id

    @property
    def status(self) -> LotStatus:
        return LotStatus.WEIGHED if self.grading is None else LotStatus.GRADED


class Applied(StrEnum):
    """What applying an event did to the registry."""

    ADDED = "added"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    PENDING = "pending"


@dataclass(frozen=True)
class _PendingGrade:
    grading: Grading
    graded_at: datetime


class LotRegistry:
    """Every lot weighed in the hall, by lot id; not thread-safe, callers hold a lock."""

    def __init__(self) -> None:
        self._lots: dict[str, Lot] = {}
        self._arrival: dict[str, int] = {}
        self._pending: dict[str, _PendingGrade] = {}

    def __len__(self) -> int:
        return len(self._lots)

    def __iter__(self) -> Iterator[Lot]:
        return iter(self._lots.values())

    def find(self, lot_id: str) -> Lot | None:
        return self._lots.get(lot_id)

    def get(self, lot_id: str) -> Lot:
        lot = self._lots.get(lot_id)
        if lot is None:
            raise UnknownLot(f"no lot {lot_id!r} has been weighed")
        return lot

    def latest(self, limit: int) -> list[Lot]:
        """Newest weighing first; arrival order breaks ties between equal timestamps."""
        return heapq.nlargest(
            limit, self._lots.values(), key=lambda lot: (lot.weighed_at, self._arrival[lot.lot_id])
        )

    def check_new(self, weighing: Weighing) -> Lot | None:
        """The lot already recorded with this exact content, None if the lot id is new.

        Raises ``LotAlreadyWeighed`` when the lot id was weighed with different content.
        """
        existing = self._lots.get(weighing.lot_id)
        if existing is None:
            return None
        if existing.weighing != weighing:
            raise LotAlreadyWeighed(
                f"lot {weighing.lot_id!r} was already weighed at {existing.weighing.station_id} "
                f"with different content; a lot is weighed once"
            )
        return existing

    def apply_weighed(self, weighing: Weighing, event_id: UUID, weighed_at: datetime) -> Applied:
        existing = self._lots.get(weighing.lot_id)
        if existing is not None:
            same = existing.event_id == event_id or existing.weighing == weighing
            return Applied.DUPLICATE if same else Applied.CONFLICT
        lot = Lot(weighing=weighing, event_id=event_id, weighed_at=weighed_at)
        pending = self._pending.pop(weighing.lot_id, None)
        if pending is not None:
            lot = replace(lot, grading=pending.grading, graded_at=pending.graded_at)
        self._lots[weighing.lot_id] = lot
        self._arrival[weighing.lot_id] = len(self._arrival)
        return Applied.ADDED

    def apply_graded(self, lot_id: str, grading: Grading, graded_at: datetime) -> Applied:
        """Record a lot's grade; the first grade of a lot stands, later ones are duplicates."""
        existing = self._lots.get(lot_id)
        if existing is None:
            if lot_id in self._pending:
                return Applied.DUPLICATE
            self._pending[lot_id] = _PendingGrade(grading, graded_at)
            return Applied.PENDING
        if existing.grading is not None:
            return Applied.DUPLICATE
        self._lots[lot_id] = replace(existing, grading=grading, graded_at=graded_at)
        return Applied.ADDED

    @property
    def pending_grades(self) -> int:
        """Grades whose weighing has not arrived (yet); after catching up, these are orphans."""
        return len(self._pending)
