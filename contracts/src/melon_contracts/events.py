"""Events: facts that happened in the hall, named in the past tense.

Units: weights are integer grams (``*_g``), money integer fen (``*_fen``), prices fen per kg.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from melon_contracts.envelope import Message
from melon_contracts.reference import Grade, Identifier, Plate

Brix = float
"""A refractometer reading in °Brix; measurements, not money, so a float is honest here."""


class LotWeighed(Message):
    """An operator took a lot's weight at a weigh station and recorded its quality sample."""

    type: Literal["LotWeighed"] = "LotWeighed"
    lot_id: Identifier
    station_id: Identifier
    farmer_id: Identifier
    variety: Identifier
    crates: int = Field(ge=1, le=10_000)
    net_g: int = Field(gt=0, le=100_000_000)
    brix: tuple[Brix, ...] = Field(min_length=1, max_length=100)
    operator_id: Identifier

    @model_validator(mode="after")
    def _brix_in_range(self) -> LotWeighed:
        for reading in self.brix:
            if not 0.0 <= reading <= 35.0:
                raise ValueError(f"Brix reading {reading} is outside 0-35")
        return self


class LotGraded(Message):
    """A weighed lot received its grade under a named, versioned grading profile."""

    type: Literal["LotGraded"] = "LotGraded"
    lot_id: Identifier
    farmer_id: Identifier
    variety: Identifier
    crates: int = Field(ge=1)
    net_g: int = Field(gt=0)
    grade: Grade
    profile_id: str
    profile_version: int = Field(ge=1)
    brix_mean: Brix
    brix_samples: int = Field(ge=1)
    reason: str = Field(description="Why the lot got this grade, in words a farmer can check")


class TradeExecuted(Message):
    """Crates of a lot were sold to a merchant's bid at a price per kg."""

    type: Literal["TradeExecuted"] = "TradeExecuted"
    trade_id: str = Field(description="Deterministic: the same commands always give the same id")
    book: str
    sequence: int = Field(ge=1, description="Position of the trade in its book")
    lot_id: Identifier
    farmer_id: Identifier
    bid_id: Identifier
    merchant_id: Identifier
    variety: Identifier
    grade: Grade
    crates: int = Field(ge=1)
    weight_g: int = Field(gt=0)
    price_fen_per_kg: int = Field(gt=0)
    amount_fen: int = Field(ge=0)
    destination: str
    cold_chain: bool


class BoardUpdated(Message):
    """The price board's line for one book (variety x grade) after a change."""

    type: Literal["BoardUpdated"] = "BoardUpdated"
    book: str
    variety: Identifier
    grade: Grade
    best_bid_fen_per_kg: int | None
    bids_resting: int = Field(ge=0)
    bid_depth_g: int = Field(ge=0)
    lots_resting: int = Field(ge=0)
    offered_g: int = Field(ge=0)
    last_price_fen_per_kg: int | None
    volume_g: int = Field(ge=0)
    trades: int = Field(ge=0)


class TruckCheckedIn(Message):
    """A truck passed the gate and joined the yard queue."""

    type: Literal["TruckCheckedIn"] = "TruckCheckedIn"
    plate: Plate
    driver: str = Field(min_length=1, max_length=64)
    phone: str = Field(default="", max_length=32)
    capacity_g: int = Field(gt=0, le=100_000_000)
    refrigerated: bool
    checked_in_by: Identifier


class ShipmentAssigned(Message):
    """Logistics staff put a shipment (the goods of one trade) on a truck."""

    type: Literal["ShipmentAssigned"] = "ShipmentAssigned"
    shipment_id: str
    trade_id: str
    lot_id: Identifier
    plate: Plate
    weight_g: int = Field(gt=0)
    cold_chain: bool
    assigned_by: Identifier


class DeadLettered(Message):
    """A message a reader could not use, kept with the reason instead of being dropped."""

    type: Literal["DeadLettered"] = "DeadLettered"
    source_topic: str
    partition: int
    offset: int
    key: str | None
    payload: str = Field(description="The original bytes, decoded as UTF-8 with replacement")
    reason: str
    rejected_by: str
