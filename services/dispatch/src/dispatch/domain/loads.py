"""Suggested loads: which waiting shipments to put on which waiting trucks.

Logistics staff still make every assignment; a plan is a suggestion they can take or leave. This
module holds what any planner must respect and how plans are compared, with no solver in it: the
greedy first-fit-decreasing planner lives here, the exact one (CP-SAT) in the adapters, and both
are judged by the same ``check`` and ``score``.

Objective, lexicographic (``score`` returns it as an ordered pair, larger is better):

1. ``loaded_g``: total grams loaded onto trucks, maximised;
2. ``loaded_wait_s``: among plans loading the same weight, the sum over loaded shipments of how
   long each has waited (``now_s - waiting_since_s``, never below 0), maximised. Every shipment's
   wait is fixed, so this is the same as minimising ``unassigned_wait_s``, the total wait of the
   shipments left behind.

No amount of waiting outweighs a single gram: a plan that loads more always wins.

Weights are integer grams and times integer seconds; nothing here reads a clock. When a plan
needs "now" and none is given, it is the latest moment the inputs mention (the newest shipment or
truck arrival), so the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dispatch.domain.errors import DispatchError


class InfeasiblePlan(DispatchError):
    """A plan breaks a loading rule or does not add up; raised by ``Plan.check``."""


class DuplicateId(DispatchError):
    """Two shipments, or two trucks, given to a planner under one id."""


@dataclass(frozen=True)
class Shipment:
    """A waiting shipment as a planner sees it: weight, cold chain, where it goes, since when."""

    shipment_id: str
    weight_g: int
    cold_chain: bool
    destination: str
    waiting_since_s: int


@dataclass(frozen=True)
class Truck:
    """A waiting truck as a planner sees it; no destinations means it will go anywhere."""

    plate: str
    capacity_g: int
    refrigerated: bool
    destinations: frozenset[str]
    arrived_s: int

    def serves(self, destination: str) -> bool:
        return not self.destinations or destination in self.destinations


def allowed(shipment: Shipment, truck: Truck) -> bool:
    """Whether the shipment may go on this truck at all, whatever else is on it."""
    return (
        shipment.weight_g <= truck.capacity_g
        and (truck.refrigerated or not shipment.cold_chain)
        and truck.serves(shipment.destination)
    )


def yard_order(trucks: Iterable[Truck]) -> list[Truck]:
    """Trucks in the order they arrived at the gate (plate breaks ties)."""
    return sorted(trucks, key=lambda t: (t.arrived_s, t.plate))


def reference_time(shipments: Iterable[Shipment], trucks: Iterable[Truck] = ()) -> int:
    """The latest moment the inputs mention: the "now" of a plan when none is given."""
    moments = [s.waiting_since_s for s in shipments] + [t.arrived_s for t in trucks]
    return max(moments, default=0)


def wait_s(shipment: Shipment, now_s: int) -> int:
    return max(0, now_s - shipment.waiting_since_s)


def index_shipments(shipments: Iterable[Shipment]) -> dict[str, Shipment]:
    by_id: dict[str, Shipment] = {}
    for shipment in shipments:
        if shipment.shipment_id in by_id:
            raise DuplicateId(f"shipment {shipment.shipment_id} is given twice")
        by_id[shipment.shipment_id] = shipment
    return by_id


def index_trucks(trucks: Iterable[Truck]) -> dict[str, Truck]:
    by_plate: dict[str, Truck] = {}
    for truck in trucks:
        if truck.plate in by_plate:
            raise DuplicateId(f"truck {truck.plate} is given twice")
        by_plate[truck.plate] = truck
    return by_plate


@dataclass(frozen=True)
class TruckPlan:
    """What a plan puts on one truck."""

    plate: str
    capacity_g: int
    shipment_ids: tuple[str, ...]
    load_g: int

    @property
    def fill_ratio(self) -> float:
        return self.load_g / self.capacity_g if self.capacity_g > 0 else 0.0


class Score(NamedTuple):
    """The objective as an ordered pair: compare with ``>``; larger is better."""

    loaded_g: int
    loaded_wait_s: int


@dataclass(frozen=True)
class Plan:
    """A suggested loading of the yard.

    ``trucks`` lists every truck in yard order, used or not; ``unassigned`` the shipments left
    behind, longest waiting first. Build one with ``Plan.of``, which derives every figure from the
    assignments; ``check`` verifies a plan, however built, against the shipments and trucks.
    """

    assignments: Mapping[str, str]
    unassigned: tuple[str, ...]
    trucks: tuple[TruckPlan, ...]
    now_s: int
    loaded_g: int
    loaded_wait_s: int
    unassigned_wait_s: int

    @classmethod
    def of(
        cls,
        shipments: Sequence[Shipment],
        trucks: Sequence[Truck],
        assignments: Mapping[str, str],
        now_s: int | None = None,
    ) -> Plan:
        """The plan that makes these assignments (shipment id -> plate); checks nothing."""
        by_id = index_shipments(shipments)
        index_trucks(trucks)
        now = reference_time(shipments, trucks) if now_s is None else now_s
        on_truck: dict[str, list[str]] = {t.plate: [] for t in trucks}
        for shipment_id, plate in assignments.items():
            on_truck.setdefault(plate, []).append(shipment_id)
        truck_plans = tuple(
            TruckPlan(
                plate=t.plate,
                capacity_g=t.capacity_g,
                shipment_ids=tuple(sorted(on_truck[t.plate])),
                load_g=sum(by_id[s].weight_g for s in on_truck[t.plate] if s in by_id),
            )
            for t in yard_order(trucks)
        )
        left = [s for s in shipments if s.shipment_id not in assignments]
        left.sort(key=lambda s: (s.waiting_since_s, s.shipment_id))
        loaded = [by_id[s] for s in assignments if s in by_id]
        return cls(
            assignments=dict(sorted(assignments.items())),
            unassigned=tuple(s.shipment_id for s in left),
            trucks=truck_plans,
            now_s=now,
            loaded_g=sum(s.weight_g for s in loaded),
            loaded_wait_s=sum(wait_s(s, now) for s in loaded),
            unassigned_wait_s=sum(wait_s(s, now) for s in left),
        )

    @property
    def used_trucks(self) -> tuple[TruckPlan, ...]:
        return tuple(t for t in self.trucks if t.shipment_ids)

    @property
    def mean_fill_ratio(self) -> float:
        """Mean fill ratio over the trucks that carry anything; 0 when none does."""
        used = self.used_trucks
        return sum(t.fill_ratio for t in used) / len(used) if used else 0.0

    def load_g(self, plate: str) -> int:
        return next(t.load_g for t in self.trucks if t.plate == plate)

    def fill_ratio(self, plate: str) -> float:
        return next(t.fill_ratio for t in self.trucks if t.plate == plate)

    def check(self, shipments: Sequence[Shipment], trucks: Sequence[Truck]) -> None:
        """Raise ``InfeasiblePlan`` on the first rule this plan breaks or figure that is wrong."""
        by_id = index_shipments(shipments)
        by_plate = index_trucks(trucks)
        for shipment_id, plate in self.assignments.items():
            if shipment_id not in by_id:
                raise InfeasiblePlan(f"unknown shipment {shipment_id}")
            if plate not in by_plate:
                raise InfeasiblePlan(f"unknown truck {plate}")
        seen: dict[str, str] = {}
        for truck_plan in self.trucks:
            truck = by_plate.get(truck_plan.plate)
            if truck is None:
                raise InfeasiblePlan(f"unknown truck {truck_plan.plate}")
            for shipment_id in truck_plan.shipment_ids:
                shipment = by_id.get(shipment_id)
                if shipment is None:
                    raise InfeasiblePlan(f"unknown shipment {shipment_id}")
                if shipment_id in seen:
                    raise InfeasiblePlan(
                        f"shipment {shipment_id} is on trucks {seen[shipment_id]} and {truck.plate}"
                    )
                seen[shipment_id] = truck.plate
                if self.assignments.get(shipment_id) != truck.plate:
                    raise InfeasiblePlan(
                        f"shipment {shipment_id} is on truck {truck.plate} but not assigned to it"
                    )
                if shipment.cold_chain and not truck.refrigerated:
                    raise InfeasiblePlan(
                        f"shipment {shipment_id} needs cold chain but truck {truck.plate} "
                        "is not refrigerated"
                    )
                if not truck.serves(shipment.destination):
                    raise InfeasiblePlan(
                        f"truck {truck.plate} does not go to {shipment.destination} "
                        f"(shipment {shipment_id})"
                    )
            load = sum(by_id[s].weight_g for s in truck_plan.shipment_ids)
            if load > truck.capacity_g:
                raise InfeasiblePlan(
                    f"truck {truck.plate} carries {load} g, "
                    f"over its capacity of {truck.capacity_g} g"
                )
            if load != truck_plan.load_g or truck_plan.capacity_g != truck.capacity_g:
                raise InfeasiblePlan(f"the figures of truck {truck.plate} do not add up")
        missing = set(self.assignments) - set(seen)
        if missing:
            raise InfeasiblePlan(f"shipments {sorted(missing)} are assigned but on no truck")
        if sorted(t.plate for t in self.trucks) != sorted(by_plate):
            raise InfeasiblePlan("the plan does not list every truck exactly once")
        left = set(self.unassigned)
        if len(left) != len(self.unassigned) or left & set(seen):
            raise InfeasiblePlan("a shipment is left behind twice, or both loaded and left")
        if left | set(seen) != set(by_id):
            raise InfeasiblePlan("the plan does not account for every shipment exactly once")
        loaded = [by_id[s] for s in seen]
        figures = (
            sum(s.weight_g for s in loaded),
            sum(wait_s(s, self.now_s) for s in loaded),
            sum(wait_s(by_id[s], self.now_s) for s in left),
        )
        if figures != (self.loaded_g, self.loaded_wait_s, self.unassigned_wait_s):
            raise InfeasiblePlan("the plan's totals do not add up")


def score(plan: Plan, shipments: Sequence[Shipment]) -> Score:
    """The objective of a plan, recomputed from the shipments (see the module docstring)."""
    by_id = index_shipments(shipments)
    loaded = [by_id[s] for s in plan.assignments]
    return Score(
        loaded_g=sum(s.weight_g for s in loaded),
        loaded_wait_s=sum(wait_s(s, plan.now_s) for s in loaded),
    )


def first_fit_decreasing(
    shipments: Sequence[Shipment], trucks: Sequence[Truck], now_s: int | None = None
) -> Plan:
    """The greedy plan: heaviest shipment first, each onto the first truck in yard order with room.

    Equal weights go longest waiting first. Shipments that fit nowhere are left behind.
    """
    index_shipments(shipments)
    order = yard_order(trucks)
    remaining = {t.plate: t.capacity_g for t in order}
    assignments: dict[str, str] = {}
    for shipment in sorted(
        shipments, key=lambda s: (-s.weight_g, s.waiting_since_s, s.shipment_id)
    ):
        for truck in order:
            if allowed(shipment, truck) and shipment.weight_g <= remaining[truck.plate]:
                remaining[truck.plate] -= shipment.weight_g
                assignments[shipment.shipment_id] = truck.plate
                break
    return Plan.of(shipments, trucks, assignments, now_s)
