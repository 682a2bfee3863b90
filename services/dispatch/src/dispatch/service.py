"""The dispatch service: turns requests into events and events into the yard.

Requests are checked against the yard, published, then applied at once so the caller reads its own
write; the reader later delivers the same events again and they are skipped by event id. Both the
reader thread and request threads touch the yard, so one lock guards it, and a request holds the
lock from checking to applying so two requests in one process can never double-assign.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from dispatch.domain.errors import InvalidCapacity
from dispatch.domain.yard import (
    Assignment,
    Shipment,
    ShipmentState,
    ShipmentStatus,
    Truck,
    TruckLoad,
    Yard,
    normalize_plate,
)
from melon_contracts.envelope import utc_now
from melon_contracts.events import ShipmentAssigned, TradeExecuted, TruckCheckedIn
from melon_contracts.topics import DISPATCH_ASSIGNMENTS, TRUCKS_EVENTS
from melon_contracts.transport import Publisher, Reader, not_ready
from melon_contracts.units import UnitError, kg_to_g

log = logging.getLogger(__name__)


class NotReady(Exception):
    """The yard is still being rebuilt from the topics, so it cannot yet judge a request."""


@dataclass(frozen=True)
class CheckIn:
    plate: str
    driver: str
    phone: str
    capacity_kg: Decimal
    refrigerated: bool
    checked_in_by: str


@dataclass(frozen=True)
class Assign:
    plate: str
    shipment_ids: list[str]
    assigned_by: str


@dataclass(frozen=True)
class Assigned:
    truck: TruckLoad
    shipments: list[ShipmentState]


class DispatchService:
    """The yard behind a lock, with the publisher its requests write through."""

    def __init__(self, publisher: Publisher, clock: Callable[[], datetime] = utc_now) -> None:
        self._publisher = publisher
        self._clock = clock
        self._yard = Yard()
        self._seen: set[UUID] = set()
        self._lock = threading.RLock()
        self._reader: Reader | None = None
        self._on_stop: list[Callable[[], None]] = []

    def connect(self, reader: Reader, on_stop: Callable[[], None] | None = None) -> None:
        """Give the service the reader that rebuilds its yard, and what to close at shutdown."""
        self._reader = reader
        if on_stop is not None:
            self._on_stop.append(on_stop)

    def start(self) -> None:
        if self._reader is not None:
            self._reader.start()

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.stop()
        for close in self._on_stop:
            close()

    @property
    def health(self) -> str:
        """``ok`` once the yard holds every event that existed at start and reading goes on."""
        if self._reader is None or not_ready(self._reader) is None:
            return "ok"
        return "failed" if self._reader.failure is not None else "catching_up"

    def check_in(self, request: CheckIn) -> TruckLoad:
        try:
            capacity_g = kg_to_g(request.capacity_kg)
        except UnitError as exc:
            raise InvalidCapacity(str(exc)) from exc
        plate = normalize_plate(request.plate)
        with self._lock:
            self._ensure_ready()
            self._yard.ensure_can_check_in(plate, capacity_g)
            event = TruckCheckedIn(
                correlation_id=plate,
                occurred_at=self._clock(),
                plate=plate,
                driver=request.driver,
                phone=request.phone,
                capacity_g=capacity_g,
                refrigerated=request.refrigerated,
                checked_in_by=request.checked_in_by,
            )
            self._publisher.publish(TRUCKS_EVENTS, plate, event)
            self._apply_check_in(event)
            return self._yard.truck(plate)

    def assign(self, request: Assign) -> Assigned:
        plate = normalize_plate(request.plate)
        with self._lock:
            self._ensure_ready()
            shipments = self._yard.plan_assignment(plate, request.shipment_ids)
            at = self._clock()
            events = [
                ShipmentAssigned(
                    correlation_id=shipment.lot_id,
                    occurred_at=at,
                    shipment_id=shipment.shipment_id,
                    trade_id=shipment.shipment_id,
                    lot_id=shipment.lot_id,
                    plate=plate,
                    weight_g=shipment.weight_g,
                    cold_chain=shipment.cold_chain,
                    assigned_by=request.assigned_by,
                )
                for shipment in shipments
            ]
            for event in events:
                self._publisher.publish(DISPATCH_ASSIGNMENTS, plate, event)
                # Applied one by one: if the broker fails midway, what it did take stays true.
                self._apply_assignment(event)
            return Assigned(
                truck=self._yard.truck(plate),
                shipments=[self._yard.shipment(s.shipment_id) for s in shipments],
            )

    def trucks(self) -> list[TruckLoad]:
        with self._lock:
            return self._yard.trucks()

    def shipments(self, status: ShipmentStatus | None = None) -> list[ShipmentState]:
        with self._lock:
            return self._yard.shipments(status)

    def record_trade(self, event: TradeExecuted) -> None:
        with self._lock:
            if not self._first_sight(event.event_id):
                return
            self._yard.record_shipment(
                Shipment(
                    shipment_id=event.trade_id,
                    lot_id=event.lot_id,
                    farmer_id=event.farmer_id,
                    merchant_id=event.merchant_id,
                    variety=event.variety,
                    grade=event.grade.value,
                    crates=event.crates,
                    weight_g=event.weight_g,
                    destination=event.destination,
                    cold_chain=event.cold_chain,
                    traded_at=event.occurred_at,
                )
            )

    def record_check_in(self, event: TruckCheckedIn) -> None:
        with self._lock:
            self._apply_check_in(event)

    def record_assignment(self, event: ShipmentAssigned) -> None:
        with self._lock:
            self._apply_assignment(event)

    def _apply_check_in(self, event: TruckCheckedIn) -> None:
        if not self._first_sight(event.event_id):
            return
        truck = Truck(
            plate=normalize_plate(event.plate),
            driver=event.driver,
            phone=event.phone,
            capacity_g=event.capacity_g,
            refrigerated=event.refrigerated,
            checked_in_by=event.checked_in_by,
            checked_in_at=event.occurred_at,
        )
        if not self._yard.record_check_in(truck):
            log.info(
                "truck %s checked in again (event %s); the first check-in holds",
                truck.plate,
                event.event_id,
            )

    def _apply_assignment(self, event: ShipmentAssigned) -> None:
        if not self._first_sight(event.event_id):
            return
        loser = self._yard.record_assignment(
            Assignment(
                assignment_id=str(event.event_id),
                shipment_id=event.shipment_id,
                lot_id=event.lot_id,
                plate=normalize_plate(event.plate),
                weight_g=event.weight_g,
                cold_chain=event.cold_chain,
                assigned_by=event.assigned_by,
                assigned_at=event.occurred_at,
            )
        )
        if loser is not None:
            log.warning(
                "shipment %s was assigned to two trucks; the earlier assignment holds and "
                "assignment %s to truck %s does not",
                loser.shipment_id,
                loser.assignment_id,
                loser.plate,
            )

    def _first_sight(self, event_id: UUID) -> bool:
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        return True

    def _ensure_ready(self) -> None:
        if self.health != "ok":
            raise NotReady("the yard is still being rebuilt from the event log; try again shortly")
