"""The yard: trades waiting to leave, trucks in the queue, and every decision staff made.

Two logs feed it. Trades arrive from the matcher; they say what was sold. Decisions (check-ins,
assignments, take-backs, bays, loaded, departed) come from the yard's own log, which has one
partition: every dispatch instance folds the same decisions in the same order, and ``apply``
judges each one against the yard as the decisions before it left it. A decision that breaks a rule
at that point (it lost a race against another instance's decision) changes nothing and raises, so
every instance reaches the same yard and the instance that made it can tell its caller.

An assignment carries its trades as lines, so judging it never needs the trades log: the two logs
may be read in any order. A trade is *waiting* while no standing assignment holds it; waiting trades
are grouped into shipments, one per merchant, destination and cold-chain need.

Weights are integer grams, temperatures tenths of a degree Celsius; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dispatch.domain.errors import (
    BayOccupied,
    ColdChainRequired,
    DestinationNotServed,
    InvalidCapacity,
    InvalidTransition,
    NothingToLoad,
    OverCapacity,
    SetpointOutOfRange,
    ShipmentAlreadyAssigned,
    TruckAlreadyInYard,
    TruckAlreadyLoaded,
    TruckDeparted,
    UnknownAssignment,
    UnknownBay,
    UnknownShipment,
    UnknownTrade,
    UnknownTruck,
)
from melon_contracts.events import COLD_CHAIN_MAX_TENTHS_C, COLD_CHAIN_MIN_TENTHS_C

MAX_CAPACITY_G = 100_000_000
"""100 t: above any road truck, so a larger figure is a typing error (also the event's bound)."""


def normalize_plate(plate: str) -> str:
    """Plates are printed in capitals; staff at the gate may not type them so."""
    return plate.strip().upper()


def tenths_c(tenths: int) -> str:
    """A temperature in tenths of a degree as people write it: 75 -> '7.5'."""
    sign = "-" if tenths < 0 else ""
    return f"{sign}{abs(tenths) // 10}.{abs(tenths) % 10}"


def shipment_id_for(merchant_id: str, destination: str, cold_chain: bool) -> str:
    """The id of the shipment a merchant's goods for one destination wait in.

    Derived, so every instance names it alike; the destination is free text (often Chinese), so
    it enters as a short digest.
    """
    digest = hashlib.sha256(f"{merchant_id}\n{destination}".encode()).hexdigest()[:8]
    return f"{merchant_id}-{digest}-{'C' if cold_chain else 'A'}"


class TruckStatus(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"
    LOADING = "loading"
    LOADED = "loaded"
    DEPARTED = "departed"


class Decision(StrEnum):
    MANUAL = "manual"
    SUGGESTED = "suggested"
    EDITED = "edited"


@dataclass(frozen=True)
class Trade:
    """What one trade sold, as dispatch needs it."""

    trade_id: str
    lot_id: str
    farmer_id: str
    merchant_id: str
    variety: str
    grade: str
    crates: int
    weight_g: int
    destination: str
    cold_chain: bool
    traded_at: datetime

    @property
    def shipment_id(self) -> str:
        return shipment_id_for(self.merchant_id, self.destination, self.cold_chain)

    def line(self) -> Line:
        return Line(
            trade_id=self.trade_id,
            lot_id=self.lot_id,
            farmer_id=self.farmer_id,
            variety=self.variety,
            grade=self.grade,
            crates=self.crates,
            weight_g=self.weight_g,
            traded_at=self.traded_at,
        )


@dataclass(frozen=True)
class Line:
    """One trade's goods on a truck: lot, farm, crates and weight."""

    trade_id: str
    lot_id: str
    farmer_id: str
    variety: str
    grade: str
    crates: int
    weight_g: int
    traded_at: datetime


@dataclass(frozen=True)
class Shipment:
    """The waiting goods of one merchant for one destination and cold-chain need."""

    shipment_id: str
    merchant_id: str
    destination: str
    cold_chain: bool
    trades: tuple[Trade, ...]

    @property
    def weight_g(self) -> int:
        return sum(t.weight_g for t in self.trades)

    @property
    def crates(self) -> int:
        return sum(t.crates for t in self.trades)

    @property
    def waiting_since(self) -> datetime:
        return min(t.traded_at for t in self.trades)


@dataclass(frozen=True)
class CheckIn:
    visit_id: str
    plate: str
    driver: str
    phone: str
    capacity_g: int
    refrigerated: bool
    setpoint_tenths_c: int | None
    destinations: frozenset[str]
    by: str
    at: datetime


@dataclass(frozen=True)
class Assign:
    assignment_id: str
    visit_id: str
    plate: str
    shipment_id: str
    merchant_id: str
    destination: str
    cold_chain: bool
    lines: tuple[Line, ...]
    decision: Decision
    suggestion_id: str | None
    by: str
    at: datetime

    @property
    def weight_g(self) -> int:
        return sum(line.weight_g for line in self.lines)


@dataclass(frozen=True)
class TakeBack:
    assignment_id: str
    visit_id: str
    plate: str
    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Move:
    """A truck to a loading bay (``LOADING`` with a bay), loaded, or out of the gate."""

    visit_id: str
    plate: str
    status: TruckStatus
    bay: int | None
    by: str
    at: datetime


YardDecision = CheckIn | Assign | TakeBack | Move


@dataclass(frozen=True)
class Step:
    """One change of a truck's status: who made it and when."""

    status: TruckStatus
    at: datetime
    by: str
    bay: int | None = None


@dataclass
class Visit:
    """One truck's stay in the yard, from the gate in to the gate out."""

    checked_in: CheckIn
    phase: TruckStatus | None = None
    """LOADING, LOADED or DEPARTED once it moved on; before that the status follows its load."""
    bay: int | None = None
    assignments: dict[str, Assign] = field(default_factory=dict)
    history: list[Step] = field(default_factory=list)

    @property
    def visit_id(self) -> str:
        return self.checked_in.visit_id

    @property
    def plate(self) -> str:
        return self.checked_in.plate

    @property
    def status(self) -> TruckStatus:
        if self.phase is not None:
            return self.phase
        return TruckStatus.ASSIGNED if self.assignments else TruckStatus.WAITING

    @property
    def loaded_g(self) -> int:
        return sum(a.weight_g for a in self.assignments.values())

    @property
    def remaining_g(self) -> int:
        return self.checked_in.capacity_g - self.loaded_g

    @property
    def fill_ratio(self) -> float:
        return self.loaded_g / self.checked_in.capacity_g

    @property
    def cold_chain_ready(self) -> bool:
        """Refrigerated and set within the range honeydew travels at."""
        return in_cold_chain_range(self.checked_in)

    @property
    def departed_at(self) -> datetime | None:
        return next((s.at for s in self.history if s.status is TruckStatus.DEPARTED), None)

    def serves(self, destination: str) -> bool:
        return not self.checked_in.destinations or destination in self.checked_in.destinations

    def dwell_s(self, now: datetime) -> float:
        """Seconds from the gate in to the gate out, or to ``now`` while still in the yard."""
        end = self.departed_at or now
        return max(0.0, (end - self.checked_in.at).total_seconds())

    def moved_at(self, status: TruckStatus) -> datetime | None:
        return next((s.at for s in self.history if s.status is status), None)


def in_cold_chain_range(check_in: CheckIn) -> bool:
    setpoint = check_in.setpoint_tenths_c
    return (
        check_in.refrigerated
        and setpoint is not None
        and COLD_CHAIN_MIN_TENTHS_C <= setpoint <= COLD_CHAIN_MAX_TENTHS_C
    )


class Yard:
    """Trades, visits and standing assignments, and the rules every decision is judged by."""

    def __init__(self, bays: int) -> None:
        if bays < 1:
            raise ValueError("a yard has at least one loading bay")
        self.bays = bays
        self.version = 0
        """Goes up with every change, so views and suggestions know when they are stale."""
        self._trades: dict[str, Trade] = {}
        self._visits: dict[str, Visit] = {}
        self._current: dict[str, str] = {}
        """Plate -> visit id of the truck with that plate in the yard now."""
        self._assigned: dict[str, Assign] = {}
        """Trade id -> the standing assignment that holds it."""
        self._assignments: dict[str, Assign] = {}
        """Every assignment ever made, standing or taken back, by id."""
        self._taken_back: dict[str, TakeBack] = {}
        self._at_bay: dict[int, str] = {}

    def record_trade(self, trade: Trade) -> bool:
        """Add a trade; one seen again is ignored."""
        if trade.trade_id in self._trades:
            return False
        self._trades[trade.trade_id] = trade
        self.version += 1
        return True

    def apply(self, decision: YardDecision) -> None:
        """Judge a decision against the yard as it is and, if it stands, make it.

        Raises the broken rule's ``DispatchError`` and changes nothing when it does not stand.
        """
        self.check(decision)
        match decision:
            case CheckIn():
                self._check_in(decision)
            case Assign():
                self._assign(decision)
            case TakeBack():
                self._take_back(decision)
            case Move():
                self._move(decision)
        self.version += 1

    def check(self, decision: YardDecision) -> None:
        """Raise the rule a decision would break now; change nothing."""
        match decision:
            case CheckIn():
                self._check_check_in(decision)
            case Assign():
                self._check_assign(decision)
            case TakeBack():
                self._check_take_back(decision)
            case Move():
                self._check_move(decision)

    def _check_check_in(self, decision: CheckIn) -> None:
        if not 0 < decision.capacity_g <= MAX_CAPACITY_G:
            raise InvalidCapacity(
                f"capacity must be more than 0 and at most {MAX_CAPACITY_G // 1_000_000} t, "
                f"got {decision.capacity_g} g",
                f"载重须大于 0 且不超过 {MAX_CAPACITY_G // 1_000_000} 吨",
            )
        if normalize_plate(decision.plate) in self._current:
            raise TruckAlreadyInYard(normalize_plate(decision.plate))

    def _check_in(self, decision: CheckIn) -> None:
        visit = Visit(checked_in=decision)
        visit.history.append(Step(TruckStatus.WAITING, decision.at, decision.by))
        self._visits[decision.visit_id] = visit
        self._current[normalize_plate(decision.plate)] = decision.visit_id

    def _check_assign(self, decision: Assign) -> None:
        visit = self._open_visit(decision.visit_id, decision.plate)
        if visit.status is TruckStatus.LOADED:
            raise TruckAlreadyLoaded(visit.plate)
        for line in decision.lines:
            holder = self._assigned.get(line.trade_id)
            if holder is not None:
                raise ShipmentAlreadyAssigned(
                    f"trade {line.trade_id} (lot {line.lot_id})",
                    holder.plate,
                    what_zh=f"成交 {line.trade_id}（批次 {line.lot_id}）",
                )
        if decision.cold_chain:
            if not visit.checked_in.refrigerated:
                raise ColdChainRequired(decision.shipment_id, visit.plate)
            if not visit.cold_chain_ready:
                raise SetpointOutOfRange(
                    visit.plate,
                    tenths_c(visit.checked_in.setpoint_tenths_c or 0),
                    tenths_c(COLD_CHAIN_MIN_TENTHS_C),
                    tenths_c(COLD_CHAIN_MAX_TENTHS_C),
                )
        if not visit.serves(decision.destination):
            raise DestinationNotServed(visit.plate, decision.destination)
        if decision.weight_g > visit.remaining_g:
            raise OverCapacity(visit.plate, decision.weight_g, visit.remaining_g)

    def _assign(self, decision: Assign) -> None:
        visit = self._visits[decision.visit_id]
        first = not visit.assignments
        visit.assignments[decision.assignment_id] = decision
        self._assignments[decision.assignment_id] = decision
        for line in decision.lines:
            self._assigned[line.trade_id] = decision
        if first and visit.phase is None:
            visit.history.append(Step(TruckStatus.ASSIGNED, decision.at, decision.by))

    def _check_take_back(self, decision: TakeBack) -> None:
        assignment = self._assignments.get(decision.assignment_id)
        if assignment is None:
            raise UnknownAssignment(decision.assignment_id)
        visit = self._visits[assignment.visit_id]
        if visit.status is TruckStatus.DEPARTED:
            raise TruckDeparted(visit.plate)
        if visit.status is TruckStatus.LOADED:
            raise TruckAlreadyLoaded(visit.plate)
        if decision.assignment_id in self._taken_back:
            raise UnknownAssignment(decision.assignment_id)

    def _take_back(self, decision: TakeBack) -> None:
        assignment = self._assignments[decision.assignment_id]
        visit = self._visits[assignment.visit_id]
        del visit.assignments[decision.assignment_id]
        self._taken_back[decision.assignment_id] = decision
        for line in assignment.lines:
            del self._assigned[line.trade_id]
        if not visit.assignments and visit.phase is None:
            visit.history.append(Step(TruckStatus.WAITING, decision.at, decision.by))

    def _check_move(self, decision: Move) -> None:
        visit = self._open_visit(decision.visit_id, decision.plate)
        current = visit.status
        match decision.status:
            case TruckStatus.LOADING:
                if current not in (TruckStatus.ASSIGNED, TruckStatus.LOADING):
                    if current is TruckStatus.WAITING:
                        raise NothingToLoad(visit.plate)
                    raise InvalidTransition(visit.plate, current, decision.status)
                if not visit.assignments:
                    raise NothingToLoad(visit.plate)
                bay = decision.bay or 0
                if not 1 <= bay <= self.bays:
                    raise UnknownBay(bay, self.bays)
                holder = self._at_bay.get(bay)
                if holder is not None and holder != visit.visit_id:
                    raise BayOccupied(bay, self._visits[holder].plate)
            case TruckStatus.LOADED:
                if current is not TruckStatus.LOADING:
                    raise InvalidTransition(visit.plate, current, decision.status)
                if not visit.assignments:
                    raise NothingToLoad(visit.plate)
            case TruckStatus.DEPARTED:
                # A loaded truck leaves; so does one with nothing on it (a driver who gives up
                # waiting, or a load taken back at the bay). One with goods still to load does not.
                if current is not TruckStatus.LOADED and visit.assignments:
                    raise InvalidTransition(visit.plate, current, decision.status)
            case _:
                raise InvalidTransition(visit.plate, current, decision.status)

    def _move(self, decision: Move) -> None:
        visit = self._visits[decision.visit_id]
        if visit.bay is not None and self._at_bay.get(visit.bay) == visit.visit_id:
            # A truck holds its bay while loading; loaded, it drives off (the bay stays on record).
            del self._at_bay[visit.bay]
        if decision.status is TruckStatus.LOADING and decision.bay is not None:
            visit.bay = decision.bay
            self._at_bay[decision.bay] = visit.visit_id
        visit.phase = decision.status
        visit.history.append(Step(decision.status, decision.at, decision.by, decision.bay))
        if decision.status is TruckStatus.DEPARTED:
            self._current.pop(normalize_plate(visit.plate), None)

    def _open_visit(self, visit_id: str, plate: str) -> Visit:
        """The visit a decision is about, which must still be in the yard."""
        visit = self._visits.get(visit_id)
        if visit is None or normalize_plate(visit.plate) != normalize_plate(plate):
            raise UnknownTruck(normalize_plate(plate))
        if visit.status is TruckStatus.DEPARTED:
            raise TruckDeparted(visit.plate)
        return visit

    def visit(self, plate: str) -> Visit:
        """The truck with this plate in the yard now."""
        visit_id = self._current.get(normalize_plate(plate))
        if visit_id is None:
            # A truck that left is named as such: changing it is refused, not "not found".
            raise TruckDeparted(self.latest_visit(plate).plate)
        return self._visits[visit_id]

    def visit_by_id(self, visit_id: str) -> Visit:
        visit = self._visits.get(visit_id)
        if visit is None:
            raise UnknownTruck(visit_id)
        return visit

    def latest_visit(self, plate: str) -> Visit:
        """The truck in the yard now, or else its most recent visit (e.g. to reprint a note)."""
        plate = normalize_plate(plate)
        if plate in self._current:
            return self._visits[self._current[plate]]
        visits = [v for v in self._visits.values() if normalize_plate(v.plate) == plate]
        if not visits:
            raise UnknownTruck(plate)
        return max(visits, key=lambda v: (v.checked_in.at, v.visit_id))

    def visits(self, include_departed: bool = False) -> list[Visit]:
        """Trucks in the order they arrived at the gate."""
        chosen = [
            v
            for v in self._visits.values()
            if include_departed or v.status is not TruckStatus.DEPARTED
        ]
        return sorted(chosen, key=lambda v: (v.checked_in.at, v.plate, v.visit_id))

    def occupied_bays(self) -> dict[int, Visit]:
        return {bay: self._visits[v] for bay, v in sorted(self._at_bay.items())}

    def trade(self, trade_id: str) -> Trade:
        trade = self._trades.get(trade_id)
        if trade is None:
            raise UnknownTrade(trade_id)
        return trade

    def holder(self, trade_id: str) -> Assign | None:
        """The standing assignment holding this trade, if any."""
        return self._assigned.get(trade_id)

    def assignment(self, assignment_id: str) -> Assign:
        assignment = self._assignments.get(assignment_id)
        if assignment is None:
            raise UnknownAssignment(assignment_id)
        return assignment

    def is_standing(self, assignment_id: str) -> bool:
        return assignment_id in self._assignments and assignment_id not in self._taken_back

    def assignments(self, include_taken_back: bool = False) -> list[Assign]:
        """Assignments in the order the yard's log holds them."""
        return [
            a
            for a in self._assignments.values()
            if include_taken_back or a.assignment_id not in self._taken_back
        ]

    def waiting(self) -> list[Shipment]:
        """Shipments of the trades no standing assignment holds, longest waiting first."""
        free = (t for t in self._trades.values() if t.trade_id not in self._assigned)
        return sorted(group_by_shipment(free), key=lambda s: (s.waiting_since, s.shipment_id))

    def shipment(self, shipment_id: str) -> Shipment:
        """A waiting shipment by id."""
        found = next((s for s in self.waiting() if s.shipment_id == shipment_id), None)
        if found is None:
            raise UnknownShipment(shipment_id)
        return found

    def trades_of(self, trade_ids: Iterable[str]) -> list[Trade]:
        return [self.trade(trade_id) for trade_id in trade_ids]


def _shipment(trades: list[Trade]) -> Shipment:
    trades.sort(key=lambda t: (t.traded_at, t.trade_id))
    first = trades[0]
    return Shipment(
        shipment_id=first.shipment_id,
        merchant_id=first.merchant_id,
        destination=first.destination,
        cold_chain=first.cold_chain,
        trades=tuple(trades),
    )


def group_by_shipment(trades: Iterable[Trade]) -> list[Shipment]:
    """Trades grouped as shipments (merchant, destination, cold chain), in the order first seen."""
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(trade.shipment_id, []).append(trade)
    return [_shipment(list(group)) for group in groups.values()]
