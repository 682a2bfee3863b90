"""Events: facts that happened in the hall, named in the past tense.

Units: weights are integer grams (``*_g``), money integer fen (``*_fen``), prices fen per kg.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from melon_contracts.envelope import Message
from melon_contracts.reference import Grade, Identifier, Plate

Brix = float
"""A refractometer reading in °Brix; measurements, not money, so a float is honest here."""


ReadingValue = int
"""A scale reading in grams, signed: an indicator shows negative weights below zero."""


class ScaleReading(Message):
    """One frame a weigh station's scale indicator sent, as the gateway decoded it.

    ``correlation_id`` is the station id. ``value_g`` is None when the indicator reported overload
    or underload instead of a number. ``indicator_stable`` is the indicator's own motion flag;
    Melon Hall decides stability itself from the stream and keeps the flag only as evidence.
    """

    type: Literal["ScaleReading"] = "ScaleReading"
    station_id: Identifier
    reading_id: str = Field(
        min_length=1, max_length=96, description="<station>:<gateway session>:<sequence>"
    )
    protocol: Literal["mt-sics", "xk3190"]
    value_g: ReadingValue | None
    indicator_stable: bool
    overload: bool = False
    underload: bool = False
    raw: str = Field(max_length=64, description="The frame as received, for the audit trail")


class QualitySample(BaseModel):
    """What the operator measured on a sample of fruits from the lot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brix: tuple[Brix, ...] = Field(min_length=1, max_length=100)
    fruit_weights_g: tuple[int, ...] = Field(default=(), max_length=100)
    defects: dict[Identifier, int] = Field(
        default_factory=dict, description="Defective fruits in the sample, counted by kind"
    )

    @model_validator(mode="after")
    def _plausible(self) -> QualitySample:
        for reading in self.brix:
            if not 0.0 <= reading <= 35.0:
                raise ValueError(f"Brix reading {reading} is outside 0-35")
        for weight in self.fruit_weights_g:
            if not 0 < weight <= 20_000:
                raise ValueError(f"fruit weight {weight} g is outside 1-20000 g")
        for kind, count in self.defects.items():
            if count < 0:
                raise ValueError(f"defect count for {kind} is negative")
        return self


class LotWeighed(Message):
    """A lot's stable weight was taken at a weigh station, its ticket issued, its sample recorded.

    ``net_g = gross_g - tare_g``; in crate mode the tare is crates x the crate type's tare, in
    vehicle mode the truck's weigh-out (or stored) tare. ``ledger_seq`` points at the audit-trail
    record that holds the same weighing.
    """

    type: Literal["LotWeighed"] = "LotWeighed"
    lot_id: Identifier
    station_id: Identifier
    ticket_no: int = Field(ge=1)
    ledger_seq: int = Field(ge=1)
    farmer_id: Identifier
    village_group: str = Field(default="", max_length=64)
    variety: Identifier
    harvest_date: date | None = None
    crates: int = Field(ge=1, le=10_000)
    mode: Literal["crates", "vehicle"]
    crate_type: Identifier | None = None
    plate: Plate | None = None
    gross_g: int = Field(gt=0, le=100_000_000)
    tare_g: int = Field(ge=0, le=100_000_000)
    net_g: int = Field(gt=0, le=100_000_000)
    division_g: int = Field(gt=0)
    sample: QualitySample
    operator_id: Identifier

    @model_validator(mode="after")
    def _net_is_gross_less_tare(self) -> LotWeighed:
        if self.net_g != self.gross_g - self.tare_g:
            raise ValueError(f"net {self.net_g} g is not gross {self.gross_g} - tare {self.tare_g}")
        return self


class LotGraded(Message):
    """A weighed lot received its grade under a named, versioned grading profile.

    The measurements behind the verdict travel with it, so any grade can be explained to a farmer.
    """

    type: Literal["LotGraded"] = "LotGraded"
    lot_id: Identifier
    station_id: Identifier
    ticket_no: int = Field(ge=1)
    farmer_id: Identifier
    variety: Identifier
    crates: int = Field(ge=1)
    net_g: int = Field(gt=0)
    grade: Grade
    profile_id: str
    profile_version: int = Field(ge=1)
    size_code: str | None = None
    brix_mean: Brix
    brix_samples: int = Field(ge=1)
    fruit_weight_mean_g: int | None = None
    fruit_weight_min_g: int | None = None
    fruit_weight_max_g: int | None = None
    defect_percent: dict[str, float] = Field(default_factory=dict)
    reason: str = Field(description="Why the lot got this grade, in Chinese, for the farmer")
    reason_en: str = Field(default="", description="The same reason in English")


class LedgerRecord(Message):
    """One entry of ingest's append-only, hash-chained audit trail (topic ``ingest.ledger``).

    ``seq`` runs 1, 2, 3 ... without gaps; ``hash`` is SHA-256 over the canonical JSON of every
    other field, ``prev_hash`` is the hash of record ``seq - 1`` (64 zeros for the first). A
    correction is a new record whose body names the ``seq`` it corrects; records are never edited.
    """

    type: Literal["LedgerRecord"] = "LedgerRecord"
    seq: int = Field(ge=1)
    kind: Identifier
    actor: Identifier
    station_id: Identifier | None = None
    body: dict[str, Any]
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")


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


class DepthLevel(BaseModel):
    """Bids resting at one price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price_fen_per_kg: int = Field(gt=0)
    bids: int = Field(ge=1)
    quantity_g: int = Field(gt=0)


class BoardUpdated(Message):
    """The price board's line for one book (variety x grade) after a change.

    Day figures are for ``trading_day`` (the hall's calendar day, Asia/Shanghai). VWAP is
    ``amount_fen_today / volume_g_today`` per kg; it is given rounded half up to the fen, and the
    two totals are there for anyone who needs it exact. ``change_fen_per_kg`` is the last price
    against ``previous_close_fen_per_kg``, the last price of the previous trading day with trades.
    """

    type: Literal["BoardUpdated"] = "BoardUpdated"
    book: str
    variety: Identifier
    grade: Grade
    best_bid_fen_per_kg: int | None
    bids_resting: int = Field(ge=0)
    bid_depth_g: int = Field(ge=0)
    depth: tuple[DepthLevel, ...] = Field(default=(), description="Best price levels first")
    lots_resting: int = Field(ge=0)
    offered_g: int = Field(ge=0)
    last_price_fen_per_kg: int | None
    volume_g: int = Field(ge=0, description="All trades of the book, every day")
    trades: int = Field(ge=0)
    trading_day: date | None = None
    high_fen_per_kg: int | None = None
    low_fen_per_kg: int | None = None
    vwap_fen_per_kg: int | None = None
    volume_g_today: int = Field(default=0, ge=0)
    amount_fen_today: int = Field(default=0, ge=0)
    trades_today: int = Field(default=0, ge=0)
    previous_close_fen_per_kg: int | None = None
    change_fen_per_kg: int | None = None


BidStatus = Literal["resting", "filled", "cancelled", "expired", "rejected"]


class BidUpdated(Message):
    """Where a merchant's bid stands after a command touched it (topic ``bid.updates``)."""

    type: Literal["BidUpdated"] = "BidUpdated"
    bid_id: Identifier
    merchant_id: Identifier
    book: str
    variety: Identifier
    grade: Grade
    status: BidStatus
    price_fen_per_kg: int = Field(gt=0)
    quantity_g: int = Field(ge=0, description="What the bid asked for, as last amended")
    filled_g: int = Field(ge=0)
    remaining_g: int = Field(ge=0)
    amount_fen: int = Field(ge=0, description="What the fills so far cost")
    reason: str = Field(default="", description="Why it was rejected, cancelled or expired")


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
