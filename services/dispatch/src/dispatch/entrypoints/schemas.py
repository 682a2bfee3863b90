"""The HTTP API's request and response bodies.

Weights are given in grams and also in kg as exact decimal strings; temperatures in °C as decimal
strings ("7.5"). Views are built from the yard under its lock and are plain data after that.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dispatch.domain.suggest import Part, Suggestion
from dispatch.domain.yard import Assign, Line, Shipment, Step, Visit, Yard, tenths_c
from melon_contracts.events import COLD_CHAIN_MAX_TENTHS_C, COLD_CHAIN_MIN_TENTHS_C
from melon_contracts.reference import Identifier, Plate
from melon_contracts.units import g_to_kg

ItemId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Destination = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def _kg(grams: int) -> str:
    return str(g_to_kg(grams))


class CheckInTruckBody(BaseModel):
    """Gate check-in of a truck."""

    model_config = ConfigDict(extra="forbid")

    plate: Plate = Field(examples=["甘H12345"])
    driver: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = ""
    capacity_kg: Decimal = Field(description="What the truck may carry, in kg", examples=["12000"])
    refrigerated: bool
    setpoint_c: Decimal | None = Field(
        default=None,
        ge=-30,
        le=30,
        decimal_places=1,
        description="A reefer's set-point in °C, to a tenth; required when refrigerated",
        examples=["8.0"],
    )
    destinations: list[Destination] = Field(
        default_factory=list, max_length=20, description="Where it goes; empty means anywhere"
    )
    checked_in_by: Identifier


class AssignBody(BaseModel):
    """Put shipments (whole) and single trades on a truck: all of them or none."""

    model_config = ConfigDict(extra="forbid")

    plate: Plate
    shipment_ids: list[ItemId] = Field(default_factory=list, max_length=1000)
    trade_ids: list[ItemId] = Field(default_factory=list, max_length=1000)
    assigned_by: Identifier
    suggestion_id: str | None = Field(
        default=None, max_length=64, description="The suggestion staff started from, if any"
    )


class TakeBackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Identifier
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""


class BayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bay: int = Field(ge=1, le=99)
    by: Identifier


class ByBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Identifier


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted_by: Identifier
    plates: list[Plate] = Field(
        default_factory=list, description="Only these trucks' loads; empty takes every load"
    )


class StepOut(BaseModel):
    status: str
    at: datetime
    by: str
    bay: int | None

    @classmethod
    def of(cls, step: Step) -> StepOut:
        return cls(status=step.status.value, at=step.at, by=step.by, bay=step.bay)


class TruckOut(BaseModel):
    """A truck's visit: who drives it, what it can carry, what is on it and where it is."""

    plate: str
    visit_id: str
    driver: str
    phone: str
    refrigerated: bool
    setpoint_c: str | None
    cold_chain_ready: bool
    destinations: list[str]
    checked_in_by: str
    checked_in_at: datetime
    status: str
    bay: int | None
    capacity_g: int
    capacity_kg: str
    loaded_g: int
    loaded_kg: str
    remaining_g: int
    remaining_kg: str
    fill_ratio: float
    assignment_ids: list[str]
    dwell_s: int
    departed_at: datetime | None
    history: list[StepOut]

    @classmethod
    def of(cls, visit: Visit, now: datetime) -> TruckOut:
        truck = visit.checked_in
        setpoint = truck.setpoint_tenths_c
        return cls(
            plate=truck.plate,
            visit_id=visit.visit_id,
            driver=truck.driver,
            phone=truck.phone,
            refrigerated=truck.refrigerated,
            setpoint_c=None if setpoint is None else tenths_c(setpoint),
            cold_chain_ready=visit.cold_chain_ready,
            destinations=sorted(truck.destinations),
            checked_in_by=truck.by,
            checked_in_at=truck.at,
            status=visit.status.value,
            bay=visit.bay,
            capacity_g=truck.capacity_g,
            capacity_kg=_kg(truck.capacity_g),
            loaded_g=visit.loaded_g,
            loaded_kg=_kg(visit.loaded_g),
            remaining_g=visit.remaining_g,
            remaining_kg=_kg(visit.remaining_g),
            fill_ratio=round(visit.fill_ratio, 4),
            assignment_ids=list(visit.assignments),
            dwell_s=int(visit.dwell_s(now)),
            departed_at=visit.departed_at,
            history=[StepOut.of(step) for step in visit.history],
        )


class LineOut(BaseModel):
    """One trade's goods: lot, farm, crates and weight."""

    trade_id: str
    lot_id: str
    farmer_id: str
    variety: str
    grade: str
    crates: int
    weight_g: int
    weight_kg: str
    traded_at: datetime

    @classmethod
    def of(cls, line: Line) -> LineOut:
        return cls(
            trade_id=line.trade_id,
            lot_id=line.lot_id,
            farmer_id=line.farmer_id,
            variety=line.variety,
            grade=line.grade,
            crates=line.crates,
            weight_g=line.weight_g,
            weight_kg=_kg(line.weight_g),
            traded_at=line.traded_at,
        )


class ShipmentOut(BaseModel):
    """Waiting goods of one merchant for one destination and cold-chain need."""

    shipment_id: str
    merchant_id: str
    destination: str
    cold_chain: bool
    crates: int
    weight_g: int
    weight_kg: str
    waiting_since: datetime
    waiting_s: int
    lines: list[LineOut]

    @classmethod
    def of(cls, shipment: Shipment, now: datetime) -> ShipmentOut:
        return cls(
            shipment_id=shipment.shipment_id,
            merchant_id=shipment.merchant_id,
            destination=shipment.destination,
            cold_chain=shipment.cold_chain,
            crates=shipment.crates,
            weight_g=shipment.weight_g,
            weight_kg=_kg(shipment.weight_g),
            waiting_since=shipment.waiting_since,
            waiting_s=max(0, int((now - shipment.waiting_since).total_seconds())),
            lines=[LineOut.of(trade.line()) for trade in shipment.trades],
        )


class AssignmentOut(BaseModel):
    """A shipment put on a truck; ``standing`` is false once it was taken back."""

    assignment_id: str
    visit_id: str
    plate: str
    shipment_id: str
    merchant_id: str
    destination: str
    cold_chain: bool
    crates: int
    weight_g: int
    weight_kg: str
    decision: str
    suggestion_id: str | None
    assigned_by: str
    assigned_at: datetime
    standing: bool
    lines: list[LineOut]

    @classmethod
    def of(cls, assignment: Assign, yard: Yard) -> AssignmentOut:
        return cls(
            assignment_id=assignment.assignment_id,
            visit_id=assignment.visit_id,
            plate=assignment.plate,
            shipment_id=assignment.shipment_id,
            merchant_id=assignment.merchant_id,
            destination=assignment.destination,
            cold_chain=assignment.cold_chain,
            crates=sum(line.crates for line in assignment.lines),
            weight_g=assignment.weight_g,
            weight_kg=_kg(assignment.weight_g),
            decision=assignment.decision.value,
            suggestion_id=assignment.suggestion_id,
            assigned_by=assignment.by,
            assigned_at=assignment.at,
            standing=yard.is_standing(assignment.assignment_id),
            lines=[LineOut.of(line) for line in assignment.lines],
        )


class PartOut(BaseModel):
    """A shipment, or a part of one too heavy for any truck, as the plan places it."""

    part_id: str
    shipment_id: str
    merchant_id: str
    destination: str
    cold_chain: bool
    trade_ids: list[str]
    lot_ids: list[str]
    weight_g: int
    weight_kg: str

    @classmethod
    def of(cls, part: Part) -> PartOut:
        return cls(
            part_id=part.part_id,
            shipment_id=part.shipment.shipment_id,
            merchant_id=part.shipment.merchant_id,
            destination=part.shipment.destination,
            cold_chain=part.shipment.cold_chain,
            trade_ids=list(part.trade_ids),
            lot_ids=[t.lot_id for t in part.trades],
            weight_g=part.weight_g,
            weight_kg=_kg(part.weight_g),
        )


class SuggestedLoadOut(BaseModel):
    plate: str
    visit_id: str
    capacity_kg: str
    loaded_kg: str
    load_g: int
    load_kg: str
    fill_ratio_after: float
    parts: list[PartOut]


class PlanFigures(BaseModel):
    loaded_g: int
    loaded_kg: str
    mean_fill_ratio: float
    trucks_used: int
    left_behind: int


class SuggestionOut(BaseModel):
    """Suggested loads for the yard, and first-fit-decreasing's figures on the same inputs."""

    suggestion_id: str
    yard_version: int
    current: bool
    computed_at: datetime
    solver: str
    solve_ms: float
    split_by_trade: bool
    figures: PlanFigures
    greedy: PlanFigures
    loads: list[SuggestedLoadOut]
    left_behind: list[PartOut]

    @classmethod
    def of(cls, suggestion: Suggestion, yard_version: int) -> SuggestionOut:
        def figures(plan_loaded_g: int, fill: float, used: int, left: int) -> PlanFigures:
            return PlanFigures(
                loaded_g=plan_loaded_g,
                loaded_kg=_kg(plan_loaded_g),
                mean_fill_ratio=round(fill, 4),
                trucks_used=used,
                left_behind=left,
            )

        plan, greedy = suggestion.plan, suggestion.greedy
        return cls(
            suggestion_id=suggestion.suggestion_id,
            yard_version=suggestion.yard_version,
            current=suggestion.yard_version == yard_version,
            computed_at=suggestion.computed_at,
            solver=suggestion.solver,
            solve_ms=round(suggestion.solve_s * 1000, 1),
            split_by_trade=suggestion.split_by_trade,
            figures=figures(
                plan.loaded_g,
                suggestion.fill_after,
                len(plan.used_trucks),
                len(plan.unassigned),
            ),
            greedy=figures(
                greedy.loaded_g,
                suggestion.greedy_fill_after,
                len(greedy.used_trucks),
                len(greedy.unassigned),
            ),
            loads=[
                SuggestedLoadOut(
                    plate=load.visit.plate,
                    visit_id=load.visit.visit_id,
                    capacity_kg=_kg(load.capacity_g),
                    loaded_kg=_kg(load.loaded_before_g),
                    load_g=load.load_g,
                    load_kg=_kg(load.load_g),
                    fill_ratio_after=round(load.fill_ratio_after, 4),
                    parts=[PartOut.of(part) for part in load.parts],
                )
                for load in suggestion.loads
            ],
            left_behind=[PartOut.of(part) for part in suggestion.left_behind],
        )


class AcceptOut(BaseModel):
    assigned: list[AssignmentOut]
    refused: list[dict[str, str]]


class BayOut(BaseModel):
    bay: int
    plate: str | None
    visit_id: str | None


class YardOut(BaseModel):
    """Everything the dispatch board shows, in one snapshot."""

    version: int
    at: datetime
    bays: list[BayOut]
    cold_chain_c: tuple[str, str] = (
        tenths_c(COLD_CHAIN_MIN_TENTHS_C),
        tenths_c(COLD_CHAIN_MAX_TENTHS_C),
    )
    trucks: list[TruckOut]
    departed: list[TruckOut]
    shipments: list[ShipmentOut]
    assignments: list[AssignmentOut]
    suggestion: SuggestionOut | None

    @classmethod
    def of(
        cls, yard: Yard, now: datetime, suggestion: Suggestion | None, departed_shown: int = 50
    ) -> YardOut:
        occupied = yard.occupied_bays()
        visits = yard.visits(include_departed=True)
        return cls(
            version=yard.version,
            at=now,
            bays=[
                BayOut(
                    bay=bay,
                    plate=occupied[bay].plate if bay in occupied else None,
                    visit_id=occupied[bay].visit_id if bay in occupied else None,
                )
                for bay in range(1, yard.bays + 1)
            ],
            trucks=[TruckOut.of(v, now) for v in visits if v.status.value != "departed"],
            departed=[TruckOut.of(v, now) for v in latest_departed(visits, departed_shown)],
            shipments=[ShipmentOut.of(s, now) for s in yard.waiting()],
            assignments=[
                AssignmentOut.of(a, yard)
                for a in yard.assignments()
                if yard.visit_by_id(a.visit_id).status.value != "departed"
            ],
            suggestion=None if suggestion is None else SuggestionOut.of(suggestion, yard.version),
        )


def latest_departed(visits: list[Visit], count: int) -> list[Visit]:
    """The ``count`` trucks that left last, latest first; only they are built into the snapshot,
    which every change of the yard sends again, however many trucks the season has seen."""
    gone = [v for v in visits if v.departed_at is not None]
    return sorted(gone, key=lambda v: v.departed_at or v.checked_in.at, reverse=True)[:count]


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    waiting: dict[str, str] = Field(default={}, description="What is still being read, and how")
    degraded: dict[str, str] = Field(default={}, description="Why writes would fail, by reason")
