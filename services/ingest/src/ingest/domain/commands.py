"""Requests the weigh stations act on, named in the imperative."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from ingest.domain.lots import Weighing


@dataclass(frozen=True)
class RecordLot:
    """An operator asks to record a lot as weighed, in the units they typed (kg, °Brix)."""

    lot_id: str
    station_id: str
    farmer_id: str
    variety: str
    crates: int
    net_kg: Decimal | str | int
    brix: tuple[float, ...]
    operator_id: str


@dataclass(frozen=True)
class GradeLot:
    """Grade a weighing that was published; ``event_id`` lets a redelivery be recognised."""

    weighing: Weighing
    event_id: UUID
    weighed_at: datetime
