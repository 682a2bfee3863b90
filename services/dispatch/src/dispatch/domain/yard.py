"""The yard: which shipments wait, which trucks stand in it, and what is loaded on each.

Weights are integer grams. The yard is rebuilt from three logs read in no particular order across
partitions, so recording a fact never depends on another fact having arrived first: an assignment
may be recorded before its shipment or its truck, and views join whatever is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dispatch.domain.errors import (
    ColdChainRequired,
    EmptyAssignment,
    InvalidCapacity,
    OverCapacity,
    ShipmentAlreadyAssigned,
    TruckAlreadyInYard,
    UnknownShipment,
    UnknownTruck,
)

MAX_CAPACITY_G = 100_000_000
"""100 t: above any road truck, so a larger figure is a typing error (also the event's bound)."""


def normalize_plate(plate: str) -> str:
    """Plates are printed in capitals; staff at the gate may not type them so."""
    return plate.strip().upper()


class ShipmentStatus(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"


@dataclass(frozen=True)
class Shipment:
    """The goods of one trade, waiting to leave the hall; its id is the trade id."""

    shipment_id: str
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


@dataclass(frozen=True)
class Truck:
    """A truck that passed the gate, with what it can carry."""

    plate: str
    driver: str
    phone: str
    capacity_g: int
    refrigerated: bool
    checked_in_by: str
    checked_in_at: datetime


@dataclass(frozen=True)
class Assignment:
    """A shipment put on a truck; carries its own weight so a truck's load needs no lookup."""

    assignment_id: str
    shipment_id: str
    lot_id: str
    plate: str
    weight_g: int
    cold_chain: bool
    assigned_by: str
    assigned_at: datetime

    def precedes(self, other: Assignment) -> bool:
        return (self.assigned_at, self.assignment_id) < (other.assigned_at, other.assignment_id)


@dataclass(frozen=True)
class ShipmentState:
    """A shipment and, once it has one, its truck."""

    shipment: Shipment
    assignment: Assignment | None

    @property
    def status(self) -> ShipmentStatus:
        return ShipmentStatus.WAITING if self.assignment is None else ShipmentStatus.ASSIGNED


@dataclass(frozen=True)
class TruckLoad:
    """A truck with what is on it."""

    truck: Truck
    loaded_g: int
    shipment_ids: tuple[str, ...]

    @property
    def remaining_g(self) -> int:
        return self.truck.capacity_g - self.loaded_g


class Yard:
    """Shipments, trucks and assignments, and the rules for putting one on another."""

    def __init__(self) -> None:
        self._shipments: dict[str, Shipment] = {}
        self._trucks: dict[str, Truck] = {}
        self._assignments: dict[str, Assignment] = {}
        self._by_plate: dict[str, dict[str, Assignment]] = {}

    def record_shipment(self, shipment: Shipment) -> bool:
        """Add a shipment; a trade seen again is the same shipment, so it is ignored."""
        if shipment.shipment_id in self._shipments:
            return False
        self._shipments[shipment.shipment_id] = shipment
        return True

    def ensure_can_check_in(self, plate: str, capacity_g: int) -> None:
        if not 0 < capacity_g <= MAX_CAPACITY_G:
            raise InvalidCapacity(
                f"capacity must be more than 0 and at most {MAX_CAPACITY_G // 1_000_000} t, "
                f"got {capacity_g} g"
            )
        if normalize_plate(plate) in self._trucks:
            raise TruckAlreadyInYard(normalize_plate(plate))

    def record_check_in(self, truck: Truck) -> bool:
        """Add a truck; the first check-in of a plate holds, a repeated one is ignored."""
        plate = normalize_plate(truck.plate)
        if plate in self._trucks:
            return False
        self._trucks[plate] = truck
        return True

    def plan_assignment(self, plate: str, shipment_ids: list[str]) -> tuple[Shipment, ...]:
        """Check every rule for putting these shipments on this truck, changing nothing.

        All shipments are checked before any is assigned, so a request is taken whole or not at
        all.
        """
        if not shipment_ids:
            raise EmptyAssignment("an assignment needs at least one shipment")
        load = self.truck(plate)
        shipments = tuple(self._shipment(shipment_id) for shipment_id in shipment_ids)
        seen: set[str] = set()
        for shipment in shipments:
            assigned = self._assignments.get(shipment.shipment_id)
            if assigned is not None:
                raise ShipmentAlreadyAssigned(shipment.shipment_id, assigned.plate)
            if shipment.shipment_id in seen:
                raise ShipmentAlreadyAssigned(
                    shipment.shipment_id,
                    load.truck.plate,
                    f"shipment {shipment.shipment_id} is listed more than once",
                )
            seen.add(shipment.shipment_id)
        for shipment in shipments:
            if shipment.cold_chain and not load.truck.refrigerated:
                raise ColdChainRequired(shipment.shipment_id, load.truck.plate)
        requested_g = sum(shipment.weight_g for shipment in shipments)
        if requested_g > load.remaining_g:
            raise OverCapacity(load.truck.plate, requested_g, load.remaining_g)
        return shipments

    def record_assignment(self, assignment: Assignment) -> Assignment | None:
        """Record that a shipment went on a truck; return the assignment that lost, if any.

        Rules were checked when the assignment was made, so a recorded one is a fact and is not
        checked again. Two different trucks for one shipment can only come from a race between
        instances; the earlier assignment wins, so every rebuild reaches the same yard whatever
        order the partitions are read in.
        """
        current = self._assignments.get(assignment.shipment_id)
        if current is None:
            self._put(assignment)
            return None
        same_truck = normalize_plate(current.plate) == normalize_plate(assignment.plate)
        if current.assignment_id == assignment.assignment_id or same_truck:
            return None
        if assignment.precedes(current):
            del self._by_plate[normalize_plate(current.plate)][current.shipment_id]
            self._put(assignment)
            return current
        return assignment

    def _put(self, assignment: Assignment) -> None:
        self._assignments[assignment.shipment_id] = assignment
        on_truck = self._by_plate.setdefault(normalize_plate(assignment.plate), {})
        on_truck[assignment.shipment_id] = assignment

    def truck(self, plate: str) -> TruckLoad:
        truck = self._trucks.get(normalize_plate(plate))
        if truck is None:
            raise UnknownTruck(normalize_plate(plate))
        return self._load(truck)

    def trucks(self) -> list[TruckLoad]:
        """Trucks in the order they arrived at the gate."""
        arrived = sorted(self._trucks.values(), key=lambda t: (t.checked_in_at, t.plate))
        return [self._load(truck) for truck in arrived]

    def shipment(self, shipment_id: str) -> ShipmentState:
        return ShipmentState(self._shipment(shipment_id), self._assignments.get(shipment_id))

    def shipments(self, status: ShipmentStatus | None = None) -> list[ShipmentState]:
        """Shipments in the order they were traded, optionally only those in one status."""
        traded = sorted(self._shipments.values(), key=lambda s: (s.traded_at, s.shipment_id))
        states = [ShipmentState(s, self._assignments.get(s.shipment_id)) for s in traded]
        return [state for state in states if status is None or state.status is status]

    def _shipment(self, shipment_id: str) -> Shipment:
        shipment = self._shipments.get(shipment_id)
        if shipment is None:
            raise UnknownShipment(shipment_id)
        return shipment

    def _load(self, truck: Truck) -> TruckLoad:
        on_truck = self._by_plate.get(normalize_plate(truck.plate), {})
        return TruckLoad(
            truck=truck,
            loaded_g=sum(a.weight_g for a in on_truck.values()),
            shipment_ids=tuple(on_truck),
        )
