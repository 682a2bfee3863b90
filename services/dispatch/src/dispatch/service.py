"""The dispatch service: staff decisions in, the yard's log as the judge, the yard out.

A request is checked against the yard (so plain mistakes are refused at once), published to the
yard's one-partition log, and then *waited for*: the request answers only once this instance's
reader has folded its own decision back, and it answers with what the fold decided. Two instances
that accept conflicting decisions at the same moment therefore both publish, but the log orders
them, every instance's fold lets the first stand and refuses the second, and the second request
answers 409. Nothing is applied to the yard except by the fold, so what a request saw is what every
instance sees and what a restart rebuilds.

One lock guards the yard (the reader thread folds, request threads read); a second one serialises
this instance's decisions so it never races itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from dispatch.domain import loads
from dispatch.domain.errors import (
    DispatchError,
    EmptyAssignment,
    InvalidCapacity,
    OverCapacity,
    ShipmentAlreadyAssigned,
    UnknownShipment,
    UnknownSuggestion,
)
from dispatch.domain.suggest import Suggestion, planner_inputs, same_load, suggestion_id
from dispatch.domain.yard import (
    MAX_CAPACITY_G,
    Assign,
    CheckIn,
    Decision,
    Line,
    Move,
    TakeBack,
    Trade,
    TruckStatus,
    Visit,
    Yard,
    YardDecision,
    normalize_plate,
)
from melon_contracts.envelope import Message, utc_now
from melon_contracts.events import (
    ShipmentAssigned,
    ShipmentLine,
    ShipmentUnassigned,
    TradeExecuted,
    TruckCheckedIn,
    TruckStatusChanged,
)
from melon_contracts.health import BrokerWatch
from melon_contracts.reference import Grade
from melon_contracts.topics import DISPATCH_YARD
from melon_contracts.transport import Publisher, Reader, not_ready
from melon_contracts.units import UnitError, kg_to_g

log = logging.getLogger(__name__)

T = TypeVar("T")

Planner = Callable[[Sequence[loads.Shipment], Sequence[loads.Truck], int], loads.Plan]
"""(shipments, trucks, now_s) -> plan; the composition root picks the solver and its time limit."""

CONFIRM_TIMEOUT_S = 15.0
SUGGESTIONS_KEPT = 32
PLAN_SETTLE_S = 0.3
MAX_LINES = 1000
"""Trades one ShipmentAssigned carries at most (the event's bound)."""


class NotReady(Exception):
    """The yard is still being rebuilt from the topics, so it cannot yet judge a request."""


class DecisionUnconfirmed(Exception):
    """The decision is in the log, but this instance has not read it back in time."""

    message_zh = "决定已记录，但尚未确认，请刷新查看结果"


@dataclass(frozen=True)
class CheckInRequest:
    plate: str
    driver: str
    phone: str
    capacity_kg: Decimal
    refrigerated: bool
    setpoint_c: Decimal | None
    destinations: tuple[str, ...]
    by: str


@dataclass(frozen=True)
class AssignRequest:
    plate: str
    shipment_ids: tuple[str, ...]
    trade_ids: tuple[str, ...]
    by: str
    suggestion_id: str | None = None


@dataclass(frozen=True)
class AcceptOutcome:
    """What accepting a suggestion did, truck by truck."""

    assigned: list[Assign]
    refused: list[tuple[str, DispatchError]]


class Listeners:
    """Wakes every open stream when the yard changes; streams live on the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def add(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.add(entry)
        return entry

    def remove(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiting.discard(entry)

    def notify(self) -> None:
        with self._lock:
            entries = list(self._waiting)
        for loop, event in entries:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


class DispatchService:
    """The yard behind a lock, the publisher decisions go through, and the planner."""

    def __init__(
        self,
        publisher: Publisher,
        bays: int,
        planner: Planner,
        solver: str,
        clock: Callable[[], datetime] = utc_now,
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
        auto_suggest: bool = True,
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._planner = planner
        self._solver = solver
        self._confirm_timeout_s = confirm_timeout_s
        self._yard = Yard(bays)
        self._seen: set[UUID] = set()
        self._outcomes: dict[UUID, DispatchError | None] = {}
        self._lock = threading.RLock()
        self._folded = threading.Condition(self._lock)
        self._deciding = threading.Lock()
        self._solving = threading.Lock()
        self._suggestions: OrderedDict[str, Suggestion] = OrderedDict()
        self._latest: Suggestion | None = None
        self._reader: Reader | None = None
        self.broker: BrokerWatch | None = None
        self._on_stop: list[Callable[[], None]] = []
        self.listeners = Listeners()
        self._auto_suggest = auto_suggest
        self._stopping = threading.Event()
        self._yard_changed = threading.Event()
        self._planning = threading.Thread(target=self._plan_ahead, name="planner", daemon=True)
        self.on_fold: list[Callable[[Message, DispatchError | None, Yard], None]] = []
        """Called under the yard lock after every decision folded (e.g. to observe metrics)."""
        self.on_suggestion: list[Callable[[Suggestion], None]] = []

    def connect(
        self,
        reader: Reader,
        on_stop: Callable[[], None] | None = None,
        broker: BrokerWatch | None = None,
    ) -> None:
        """Give the service the reader that rebuilds its yard, what to close at shutdown, and
        the watch that tells whether the broker answers."""
        self._reader = reader
        self.broker = broker
        if on_stop is not None:
            self._on_stop.append(on_stop)

    def start(self) -> None:
        if self._reader is not None:
            self._reader.start()
        if self.broker is not None:
            self.broker.start()
        if self._auto_suggest:
            self._planning.start()

    def stop(self) -> None:
        self._stopping.set()
        self._yard_changed.set()
        if self._planning.is_alive():
            self._planning.join(timeout=self._confirm_timeout_s)
        if self._reader is not None:
            self._reader.stop()
        if self.broker is not None:
            self.broker.stop()
        for close in self._on_stop:
            close()

    @property
    def health(self) -> str:
        """``ok`` once the yard holds every event that existed at start and reading goes on."""
        if self._reader is None or not_ready(self._reader) is None:
            return "ok"
        return "failed" if self._reader.failure is not None else "catching_up"

    def degraded(self) -> dict[str, str]:
        """Why the service cannot take decisions although its yard is whole, by reason."""
        return {} if self.broker is None else self.broker.degraded()

    @property
    def live(self) -> bool:
        return self.health == "ok"

    def now(self) -> datetime:
        return self._clock()

    def read(self, view: Callable[[Yard], T]) -> T:
        """Run ``view`` on the yard under its lock; views build their answer inside it."""
        with self._lock:
            return view(self._yard)

    @property
    def version(self) -> int:
        with self._lock:
            return self._yard.version

    @property
    def changes(self) -> tuple[int, str | None]:
        """The yard's version and the latest suggestion's id: a stream resends when either moves."""
        with self._lock:
            latest = self._latest
            return self._yard.version, None if latest is None else latest.suggestion_id

    # The fold: every record of the two logs comes through here, from the reader or a loopback.

    def record_trade(self, event: TradeExecuted) -> None:
        with self._lock:
            if not self._first_sight(event.event_id):
                return
            changed = self._yard.record_trade(
                Trade(
                    trade_id=event.trade_id,
                    lot_id=event.lot_id,
                    farmer_id=event.farmer_id,
                    merchant_id=event.merchant_id,
                    variety=event.variety,
                    grade=event.grade.value,
                    crates=event.crates,
                    weight_g=event.weight_g,
                    destination=event.destination.strip(),
                    cold_chain=event.cold_chain,
                    traded_at=event.occurred_at,
                )
            )
        if changed:
            self._yard_changed.set()
            self.listeners.notify()

    def record_yard(self, event: Message) -> None:
        """Fold one decision from the yard's log: it stands or is refused, the same everywhere."""
        decision = to_decision(event)
        with self._lock:
            if not self._first_sight(event.event_id):
                return
            outcome: DispatchError | None = None
            try:
                self._yard.apply(decision)
            except DispatchError as exc:
                outcome = exc
                log.warning(
                    "decision %s (%s by %s) does not stand: %s",
                    event.event_id,
                    type(event).__name__,
                    decision.by,
                    exc,
                )
            self._outcomes[event.event_id] = outcome
            for observe in self.on_fold:
                observe(event, outcome, self._yard)
            self._folded.notify_all()
        self._yard_changed.set()
        self.listeners.notify()

    # Decisions: checked, published, and answered with what the fold made of them.

    def check_in(self, request: CheckInRequest) -> Visit:
        try:
            capacity_g = kg_to_g(request.capacity_kg)
        except UnitError as exc:
            raise InvalidCapacity(str(exc), "载重的位数不对") from exc
        if not 0 < capacity_g <= MAX_CAPACITY_G:
            raise InvalidCapacity(
                f"capacity must be more than 0 and at most {MAX_CAPACITY_G // 1_000_000} t, "
                f"got {request.capacity_kg} kg",
                f"载重须大于 0 且不超过 {MAX_CAPACITY_G // 1_000_000} 吨",
            )
        setpoint = None
        if request.setpoint_c is not None:
            setpoint = int((request.setpoint_c * 10).to_integral_value())
        plate = normalize_plate(request.plate)
        event = TruckCheckedIn(
            correlation_id=plate,
            occurred_at=self._clock(),
            plate=plate,
            driver=request.driver,
            phone=request.phone,
            capacity_g=capacity_g,
            refrigerated=request.refrigerated,
            setpoint_tenths_c=setpoint,
            destinations=tuple(dict.fromkeys(d.strip() for d in request.destinations)),
            checked_in_by=request.by,
        )
        self._decide(event)
        return self.read(lambda yard: yard.visit_by_id(str(event.event_id)))

    def assign(self, request: AssignRequest) -> list[Assign]:
        """Put shipments (whole) and trades (one by one) on a truck: one event per shipment."""
        if not request.shipment_ids and not request.trade_ids:
            raise EmptyAssignment("an assignment needs at least one shipment or trade")
        with self._deciding:
            self._ensure_ready()
            events = self.read(lambda yard: self._assignment_events(yard, request))
            for event in events:
                self._decide_locked(event)
        return self.read(lambda yard: [yard.assignment(str(e.event_id)) for e in events])

    def take_back(self, assignment_id: str, by: str, reason: str) -> Assign:
        def event_of(yard: Yard) -> ShipmentUnassigned:
            assignment = yard.assignment(assignment_id)
            return ShipmentUnassigned(
                correlation_id=assignment.plate,
                occurred_at=self._clock(),
                assignment_id=UUID(assignment.assignment_id),
                visit_id=UUID(assignment.visit_id),
                plate=assignment.plate,
                reason=reason,
                unassigned_by=by,
            )

        with self._deciding:
            self._ensure_ready()
            self._decide_locked(self.read(event_of))
        return self.read(lambda yard: yard.assignment(assignment_id))

    def move(self, plate: str, status: TruckStatus, by: str, bay: int | None = None) -> Visit:
        def event_of(yard: Yard) -> TruckStatusChanged:
            visit = yard.visit(plate)
            return TruckStatusChanged(
                correlation_id=visit.plate,
                occurred_at=self._clock(),
                visit_id=UUID(visit.visit_id),
                plate=visit.plate,
                status=status.value,
                bay=bay,
                changed_by=by,
            )

        with self._deciding:
            self._ensure_ready()
            event = self.read(event_of)
            self._decide_locked(event)
        return self.read(lambda yard: yard.visit_by_id(str(event.visit_id)))

    def accept(self, suggestion_id: str, by: str, plates: Sequence[str] = ()) -> AcceptOutcome:
        """Assign what a suggestion puts on each truck (or on the trucks named), truck by truck."""
        with self._lock:
            suggestion = self._suggestions.get(suggestion_id)
        if suggestion is None:
            raise UnknownSuggestion(suggestion_id)
        wanted = {normalize_plate(p) for p in plates}
        outcome = AcceptOutcome([], [])
        for load in suggestion.loads:
            plate = load.visit.plate
            if wanted and normalize_plate(plate) not in wanted:
                continue
            trade_ids = tuple(t for part in load.parts for t in part.trade_ids)
            try:
                outcome.assigned.extend(
                    self.assign(AssignRequest(plate, (), trade_ids, by, suggestion_id))
                )
            except DispatchError as exc:
                outcome.refused.append((plate, exc))
        return outcome

    def _assignment_events(self, yard: Yard, request: AssignRequest) -> list[ShipmentAssigned]:
        visit = yard.visit(request.plate)
        trades: dict[str, Trade] = {}
        for shipment_id in request.shipment_ids:
            for trade in self._waiting_trades(yard, shipment_id):
                trades[trade.trade_id] = trade
        for trade in yard.trades_of(request.trade_ids):
            trades[trade.trade_id] = trade
        decision = Decision.MANUAL
        suggestion = None
        if request.suggestion_id is not None:
            suggestion = self._suggestions.get(request.suggestion_id)
            if suggestion is None:
                raise UnknownSuggestion(request.suggestion_id)
            suggested = same_load(suggestion.load_for(visit.plate), list(trades))
            decision = Decision.SUGGESTED if suggested else Decision.EDITED
        groups: dict[str, list[Trade]] = {}
        for trade in sorted(trades.values(), key=lambda t: (t.traded_at, t.trade_id)):
            group = groups.setdefault(trade.shipment_id, [])
            group.append(trade)
        # One event per shipment, and a shipment of more trades than an event holds in several.
        chunks = [
            group[start : start + MAX_LINES]
            for group in groups.values()
            for start in range(0, len(group), MAX_LINES)
        ]
        at = self._clock()
        events = []
        for group in chunks:
            first = group[0]
            events.append(
                ShipmentAssigned(
                    correlation_id=visit.plate,
                    occurred_at=at,
                    visit_id=UUID(visit.visit_id),
                    plate=visit.plate,
                    shipment_id=first.shipment_id,
                    merchant_id=first.merchant_id,
                    destination=first.destination,
                    cold_chain=first.cold_chain,
                    lines=tuple(_line(t) for t in group),
                    weight_g=sum(t.weight_g for t in group),
                    decision=decision.value,
                    suggestion_id=request.suggestion_id,
                    assigned_by=request.by,
                )
            )
        # Judge the request whole before publishing any of it: all its shipments or none.
        trial = [to_decision(e) for e in events]
        probe = _Probe(yard)
        for one in trial:
            probe.check(one)
        return events

    @staticmethod
    def _waiting_trades(yard: Yard, shipment_id: str) -> tuple[Trade, ...]:
        """A waiting shipment's trades; one that was just assigned is named as such, not unknown."""
        try:
            return yard.shipment(shipment_id).trades
        except UnknownShipment:
            holder = next(
                (a for a in reversed(yard.assignments()) if a.shipment_id == shipment_id), None
            )
            if holder is None:
                raise
            raise ShipmentAlreadyAssigned(
                f"shipment {shipment_id}", holder.plate, what_zh=f"货单 {shipment_id}"
            ) from None

    def _decide(self, event: Message) -> None:
        with self._deciding:
            self._decide_locked(event)

    def _decide_locked(self, event: Message) -> None:
        decision = to_decision(event)
        with self._lock:
            self._ensure_ready()
            self._yard.check(decision)
        self._publisher.publish(DISPATCH_YARD, normalize_plate(decision.plate), event)
        outcome = self._confirm(event.event_id)
        if outcome is not None:
            raise outcome

    def _confirm(self, event_id: UUID) -> DispatchError | None:
        deadline = time.monotonic() + self._confirm_timeout_s
        with self._lock:
            while event_id not in self._outcomes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecisionUnconfirmed(
                        f"decision {event_id} is in the yard's log but was not read back within "
                        f"{self._confirm_timeout_s:g} s; refresh to see whether it stood"
                    )
                self._folded.wait(left)
            return self._outcomes[event_id]

    # Suggestions

    def suggestion(self) -> Suggestion:
        """The suggested loads for the yard as it is now (solved if the yard changed since)."""
        with self._solving:
            with self._lock:
                self._ensure_ready()
                latest = self._latest
                if latest is not None and latest.yard_version == self._yard.version:
                    return latest
                version = self._yard.version
                now = self._clock()
                whole = planner_inputs(self._yard, now)
                per_trade = planner_inputs(self._yard, now, per_trade=True)
            started = time.perf_counter()
            plan = self._planner(whole.shipments, whole.trucks, whole.now_s)
            inputs, split_by_trade = whole, False
            if len(per_trade.shipments) > len(whole.shipments) and plan.unassigned:
                # Whole shipments left something behind: see whether moving trades one by one
                # would load more. Only strictly more weight is worth splitting a merchant's goods.
                finer = self._planner(per_trade.shipments, per_trade.trucks, per_trade.now_s)
                if finer.loaded_g > plan.loaded_g:
                    plan, inputs, split_by_trade = finer, per_trade, True
            solve_s = time.perf_counter() - started
            greedy = loads.first_fit_decreasing(whole.shipments, whole.trucks, whole.now_s)
            suggestion = Suggestion(
                suggestion_id=suggestion_id(inputs, plan),
                yard_version=version,
                computed_at=now,
                solver=self._solver,
                solve_s=solve_s,
                plan=plan,
                greedy=greedy,
                inputs=inputs,
                split_by_trade=split_by_trade,
            )
            with self._lock:
                self._latest = suggestion
                self._suggestions[suggestion.suggestion_id] = suggestion
                self._suggestions.move_to_end(suggestion.suggestion_id)
                while len(self._suggestions) > SUGGESTIONS_KEPT:
                    self._suggestions.popitem(last=False)
            for observe in self.on_suggestion:
                observe(suggestion)
            self.listeners.notify()
            return suggestion

    def _plan_ahead(self) -> None:
        """Solve again shortly after the yard changes, so the board shows a current suggestion."""
        while not self._stopping.is_set():
            self._yard_changed.wait()
            # Let a burst of changes (a suggestion accepted truck by truck) settle first.
            self._stopping.wait(PLAN_SETTLE_S)
            self._yard_changed.clear()
            if self._stopping.is_set():
                return
            if not self.live:
                self._yard_changed.set()
                self._stopping.wait(PLAN_SETTLE_S)
                continue
            try:
                self.suggestion()
            except Exception:
                log.exception("suggested loads could not be solved; the board keeps the last ones")
            self.listeners.notify()

    def latest_suggestion(self) -> Suggestion | None:
        """The last suggestion solved, without solving; it may be for an older yard."""
        with self._lock:
            return self._latest

    def _first_sight(self, event_id: UUID) -> bool:
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        return True

    def _ensure_ready(self) -> None:
        if self.health != "ok":
            raise NotReady("the yard is still being rebuilt from the event log; try again shortly")


class _Probe:
    """Checks several assignments as if each stood before the next, without touching the yard."""

    def __init__(self, yard: Yard) -> None:
        self._yard = yard
        self._added: dict[str, int] = {}

    def check(self, decision: YardDecision) -> None:
        self._yard.check(decision)
        if isinstance(decision, Assign):
            visit = self._yard.visit_by_id(decision.visit_id)
            already = self._added.get(decision.visit_id, 0)
            if already + decision.weight_g > visit.remaining_g:
                raise OverCapacity(visit.plate, already + decision.weight_g, visit.remaining_g)
            self._added[decision.visit_id] = already + decision.weight_g


def _line(trade: Trade) -> ShipmentLine:
    return ShipmentLine(
        trade_id=trade.trade_id,
        lot_id=trade.lot_id,
        farmer_id=trade.farmer_id,
        variety=trade.variety,
        grade=Grade(trade.grade),
        crates=trade.crates,
        weight_g=trade.weight_g,
        traded_at=trade.traded_at,
    )


def to_decision(event: Message) -> YardDecision:
    """A yard event as the decision the domain judges."""
    match event:
        case TruckCheckedIn():
            return CheckIn(
                visit_id=str(event.event_id),
                plate=normalize_plate(event.plate),
                driver=event.driver,
                phone=event.phone,
                capacity_g=event.capacity_g,
                refrigerated=event.refrigerated,
                setpoint_tenths_c=event.setpoint_tenths_c,
                destinations=frozenset(event.destinations),
                by=event.checked_in_by,
                at=event.occurred_at,
            )
        case ShipmentAssigned():
            return Assign(
                assignment_id=str(event.event_id),
                visit_id=str(event.visit_id),
                plate=normalize_plate(event.plate),
                shipment_id=event.shipment_id,
                merchant_id=event.merchant_id,
                destination=event.destination,
                cold_chain=event.cold_chain,
                lines=tuple(
                    Line(
                        trade_id=line.trade_id,
                        lot_id=line.lot_id,
                        farmer_id=line.farmer_id,
                        variety=line.variety,
                        grade=line.grade.value,
                        crates=line.crates,
                        weight_g=line.weight_g,
                        traded_at=line.traded_at,
                    )
                    for line in event.lines
                ),
                decision=Decision(event.decision),
                suggestion_id=event.suggestion_id,
                by=event.assigned_by,
                at=event.occurred_at,
            )
        case ShipmentUnassigned():
            return TakeBack(
                assignment_id=str(event.assignment_id),
                visit_id=str(event.visit_id),
                plate=normalize_plate(event.plate),
                reason=event.reason,
                by=event.unassigned_by,
                at=event.occurred_at,
            )
        case TruckStatusChanged():
            return Move(
                visit_id=str(event.visit_id),
                plate=normalize_plate(event.plate),
                status=TruckStatus(event.status),
                bay=event.bay,
                by=event.changed_by,
                at=event.occurred_at,
            )
    raise ValueError(f"the yard's log does not hold {type(event).__name__}")
