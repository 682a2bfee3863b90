"""Events: facts that happened in the hall, named in the past tense.

Units: weights are integer grams (``*_g``), money integer fen (``*_fen``), prices fen per kg.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

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


COLD_CHAIN_MIN_TENTHS_C = 70
COLD_CHAIN_MAX_TENTHS_C = 100
"""Honeydew travels at about 7-10 °C: colder gives chilling injury, warmer shortens its life."""

Destination = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class TruckCheckedIn(Message):
    """A truck passed the gate and joined the yard queue.

    The event id names this visit: a plate that departs and comes back is a new visit. A reefer
    states its set-point in tenths of a degree Celsius (75 is 7.5 °C); a truck without a
    refrigeration unit states none. No destinations means the truck will go anywhere.
    """

    type: Literal["TruckCheckedIn"] = "TruckCheckedIn"
    plate: Plate
    driver: str = Field(min_length=1, max_length=64)
    phone: str = Field(default="", max_length=32)
    capacity_g: int = Field(gt=0, le=100_000_000)
    refrigerated: bool
    setpoint_tenths_c: int | None = Field(default=None, ge=-300, le=300)
    destinations: tuple[Destination, ...] = Field(default=(), max_length=20)
    checked_in_by: Identifier

    @model_validator(mode="after")
    def _setpoint_only_for_reefers(self) -> TruckCheckedIn:
        if self.refrigerated and self.setpoint_tenths_c is None:
            raise ValueError("a refrigerated truck states its set-point")
        if not self.refrigerated and self.setpoint_tenths_c is not None:
            raise ValueError("a truck without refrigeration has no set-point")
        return self


class ShipmentLine(BaseModel):
    """One trade's goods inside a shipment: enough to trace any melon on a truck to its farm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trade_id: str = Field(min_length=1, max_length=128)
    lot_id: Identifier
    farmer_id: Identifier
    variety: Identifier
    grade: Grade
    crates: int = Field(ge=1)
    weight_g: int = Field(gt=0)
    traded_at: AwareDatetime


class ShipmentAssigned(Message):
    """Logistics staff put a shipment on a truck.

    A shipment is what one merchant bought for one destination (and one cold-chain need) that was
    waiting when staff assigned it; it carries its trades as lines, so the record alone says what
    is on the truck and the yard can judge it without reading the trades. ``decision`` says whether
    staff took a suggestion as it was, edited it, or assigned by hand.
    """

    type: Literal["ShipmentAssigned"] = "ShipmentAssigned"
    visit_id: UUID
    plate: Plate
    shipment_id: str = Field(min_length=1, max_length=128)
    merchant_id: Identifier
    destination: str = Field(max_length=64, description="Empty when the buyer named none")
    cold_chain: bool
    lines: tuple[ShipmentLine, ...] = Field(min_length=1, max_length=1000)
    weight_g: int = Field(gt=0)
    decision: Literal["manual", "suggested", "edited"] = "manual"
    suggestion_id: str | None = Field(default=None, max_length=64)
    assigned_by: Identifier

    @model_validator(mode="after")
    def _weight_adds_up(self) -> ShipmentAssigned:
        if self.weight_g != sum(line.weight_g for line in self.lines):
            raise ValueError("weight_g must be the sum of the lines' weights")
        if len({line.trade_id for line in self.lines}) != len(self.lines):
            raise ValueError("a trade is listed twice")
        return self


class ShipmentUnassigned(Message):
    """Staff took a shipment back off a truck before it was loaded; its trades wait again."""

    type: Literal["ShipmentUnassigned"] = "ShipmentUnassigned"
    assignment_id: UUID = Field(description="The event id of the ShipmentAssigned taken back")
    visit_id: UUID
    plate: Plate
    reason: str = Field(default="", max_length=200)
    unassigned_by: Identifier


class TruckStatusChanged(Message):
    """A truck moved on: to a loading bay, loaded, or out of the gate."""

    type: Literal["TruckStatusChanged"] = "TruckStatusChanged"
    visit_id: UUID
    plate: Plate
    status: Literal["loading", "loaded", "departed"]
    bay: int | None = Field(default=None, ge=1, le=99)
    changed_by: Identifier

    @model_validator(mode="after")
    def _bay_when_loading(self) -> TruckStatusChanged:
        if (self.status == "loading") != (self.bay is not None):
            raise ValueError("a bay is given when, and only when, loading starts")
        return self


YardEvent = Annotated[
    TruckCheckedIn | ShipmentAssigned | ShipmentUnassigned | TruckStatusChanged,
    Field(discriminator="type"),
]
"""Every decision made in the yard, in the one order all dispatch instances fold them in."""


DEAD_LETTER_KEY_CHARS = 1_024
DEAD_LETTER_PAYLOAD_CHARS = 10_000
DEAD_LETTER_REASON_CHARS = 2_000
"""What a dead letter keeps of a record's key and value, and of the reason: with JSON's escapes
(six bytes for a control character) a letter stays under 80 KB, far below the broker's record
limit (``message.max.bytes``, about 1 MB), whatever record it was built from."""


class DeadLettered(Message):
    """A message a reader could not use, kept with the reason instead of being dropped.

    ``correlation_id`` is the record's key when that is a correlation id (1 to 64 characters of
    UTF-8), else the record's place, ``<topic>:<partition>:<offset>``. The event id is derived
    from the rejecting service and the record's place, so the same record rejected again (a
    reader replaying its topic, a second instance) gives the same letter.
    """

    type: Literal["DeadLettered"] = "DeadLettered"
    source_topic: str
    partition: int
    offset: int
    key: str | None = Field(
        max_length=DEAD_LETTER_KEY_CHARS,
        description="The record's key, decoded as UTF-8 with replacement, cut to 1024 characters",
    )
    key_size_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The length of the record's key in bytes; null when it had none",
    )
    payload: str = Field(
        max_length=DEAD_LETTER_PAYLOAD_CHARS,
        description="The original bytes, decoded as UTF-8 with replacement, cut to 10000 "
        "characters",
    )
    value_size_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The length of the record's value in bytes; null for none (a tombstone)",
    )
    reason: str = Field(max_length=DEAD_LETTER_REASON_CHARS)
    rejected_by: str
