"""From the yard to a planner's inputs and back: what a suggested load means in trades and trucks.

Planners (``loads``) know shipments and trucks by weight, cold chain, destination and time. This
module makes those from the yard and turns a plan back into trades per truck:

- a planner's truck is a truck still open to loading (waiting or assigned) with the room it has
  left; it counts as refrigerated only when its unit is set within the cold-chain range;
- a planner's shipment is a waiting shipment, or a part of one when it is heavier than any truck
  that could take it has room for: its trades are then packed, heaviest first, into parts no
  heavier than that room (a single trade heavier than every truck stays whole and is left behind).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatch.domain import loads
from dispatch.domain.yard import Shipment, Trade, TruckStatus, Visit, Yard


def epoch_s(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class Part:
    """A waiting shipment, or a part of one, as one item a planner places on one truck."""

    part_id: str
    shipment: Shipment
    trades: tuple[Trade, ...]

    @property
    def weight_g(self) -> int:
        return sum(t.weight_g for t in self.trades)

    @property
    def trade_ids(self) -> tuple[str, ...]:
        return tuple(t.trade_id for t in self.trades)


@dataclass(frozen=True)
class Inputs:
    shipments: tuple[loads.Shipment, ...]
    trucks: tuple[loads.Truck, ...]
    parts: Mapping[str, Part]
    visits: Mapping[str, Visit]
    """Plate -> the visit a planner's truck stands for."""
    now_s: int


def open_to_loading(visit: Visit) -> bool:
    return visit.status in (TruckStatus.WAITING, TruckStatus.ASSIGNED) and visit.remaining_g > 0


def planner_truck(visit: Visit) -> loads.Truck:
    return loads.Truck(
        plate=visit.plate,
        capacity_g=visit.remaining_g,
        refrigerated=visit.cold_chain_ready,
        destinations=frozenset(visit.checked_in.destinations),
        arrived_s=epoch_s(visit.checked_in.at),
    )


def split(shipment: Shipment, room_g: int) -> list[Part]:
    """The shipment as parts of at most ``room_g`` each (first-fit, heaviest trade first)."""
    if room_g <= 0 or shipment.weight_g <= room_g:
        return [Part(shipment.shipment_id, shipment, shipment.trades)]
    bins: list[list[Trade]] = []
    for trade in sorted(shipment.trades, key=lambda t: (-t.weight_g, t.traded_at, t.trade_id)):
        for bin_ in bins:
            if sum(t.weight_g for t in bin_) + trade.weight_g <= room_g:
                bin_.append(trade)
                break
        else:
            bins.append([trade])
    return [
        Part(
            f"{shipment.shipment_id}#{n}",
            shipment,
            tuple(sorted(bin_, key=lambda t: (t.traded_at, t.trade_id))),
        )
        for n, bin_ in enumerate(bins, start=1)
    ]


def by_trade(shipment: Shipment) -> list[Part]:
    """The shipment as one part per trade, for when keeping it together would leave room unused."""
    if len(shipment.trades) == 1:
        return [Part(shipment.shipment_id, shipment, shipment.trades)]
    return [
        Part(f"{shipment.shipment_id}/{trade.trade_id}", shipment, (trade,))
        for trade in shipment.trades
    ]


def planner_inputs(yard: Yard, now: datetime, per_trade: bool = False) -> Inputs:
    """The waiting shipments (split where needed) and open trucks, ready for a planner.

    ``per_trade`` offers every trade as its own item instead: a merchant's goods may then travel
    on several trucks, which staff accept only when it loads more.
    """
    visits = [v for v in yard.visits() if open_to_loading(v)]
    trucks = [planner_truck(v) for v in visits]
    parts: dict[str, Part] = {}
    for shipment in yard.waiting():
        probe = loads.Shipment(
            shipment.shipment_id, 0, shipment.cold_chain, shipment.destination, 0
        )
        rooms = [t.capacity_g for t in trucks if loads.allowed(probe, t)]
        pieces = by_trade(shipment) if per_trade else split(shipment, max(rooms, default=0))
        for part in pieces:
            parts[part.part_id] = part
    planned = tuple(
        loads.Shipment(
            shipment_id=part.part_id,
            weight_g=part.weight_g,
            cold_chain=part.shipment.cold_chain,
            destination=part.shipment.destination,
            waiting_since_s=epoch_s(min(t.traded_at for t in part.trades)),
        )
        for part in parts.values()
    )
    return Inputs(
        shipments=planned,
        trucks=tuple(trucks),
        parts=parts,
        visits={v.plate: v for v in visits},
        now_s=epoch_s(now),
    )


@dataclass(frozen=True)
class TruckLoad:
    """What a suggestion puts on one truck, with the truck's figures as they were when solved.

    ``visit`` is the live visit (for its plate and id, which never change); the load figures are
    taken at solve time, since the visit's load moves on as staff assign.
    """

    visit: Visit
    parts: tuple[Part, ...]
    load_g: int
    capacity_g: int
    loaded_before_g: int

    @property
    def fill_ratio_after(self) -> float:
        """The share of the truck's whole capacity used once this load is on."""
        return (self.loaded_before_g + self.load_g) / self.capacity_g


@dataclass(frozen=True)
class Suggestion:
    """A plan for the yard as it was at ``yard_version``, with the greedy plan beside it."""

    suggestion_id: str
    yard_version: int
    computed_at: datetime
    solver: str
    solve_s: float
    plan: loads.Plan
    greedy: loads.Plan
    inputs: Inputs
    split_by_trade: bool = False
    """Whether the plan moves trades one by one because whole shipments would load less."""

    @property
    def loads(self) -> list[TruckLoad]:
        """The trucks the plan loads, in yard order."""
        room = {t.plate: t.capacity_g for t in self.inputs.trucks}
        result = []
        for truck_plan in self.plan.used_trucks:
            visit = self.inputs.visits[truck_plan.plate]
            capacity_g = visit.checked_in.capacity_g
            result.append(
                TruckLoad(
                    visit=visit,
                    parts=tuple(self.inputs.parts[p] for p in truck_plan.shipment_ids),
                    load_g=truck_plan.load_g,
                    capacity_g=capacity_g,
                    loaded_before_g=capacity_g - room[truck_plan.plate],
                )
            )
        return result

    @property
    def left_behind(self) -> list[Part]:
        return [self.inputs.parts[p] for p in self.plan.unassigned]

    @property
    def fill_after(self) -> float:
        """Mean share of whole capacity used, over the trucks the plan loads, once loaded."""
        return fill_after(self.inputs, self.plan)

    @property
    def greedy_fill_after(self) -> float:
        """The same figure for first-fit-decreasing's plan on the same inputs."""
        return fill_after(self.inputs, self.greedy)

    def load_for(self, plate: str) -> TruckLoad | None:
        return next((load for load in self.loads if load.visit.plate == plate), None)


def fill_after(inputs: Inputs, plan: loads.Plan) -> float:
    """Mean share of whole capacity used, over the trucks the plan loads, counting what they held.

    A planner sees only the room left on a truck; staff judge a truck by how full it leaves.
    """
    room = {t.plate: t.capacity_g for t in inputs.trucks}
    ratios = []
    for truck_plan in plan.used_trucks:
        capacity = inputs.visits[truck_plan.plate].checked_in.capacity_g
        ratios.append((capacity - room[truck_plan.plate] + truck_plan.load_g) / capacity)
    return sum(ratios) / len(ratios) if ratios else 0.0


def suggestion_id(inputs: Inputs, plan: loads.Plan) -> str:
    """Names the plan by what it does, so two instances that find the same plan name it alike."""
    digest = hashlib.sha256()
    for part_id, plate in sorted(plan.assignments.items()):
        visit = inputs.visits[plate]
        trades = ",".join(inputs.parts[part_id].trade_ids)
        digest.update(f"{visit.visit_id}:{trades}\n".encode())
    return "S" + digest.hexdigest()[:11]


def same_load(suggested: TruckLoad | None, trade_ids: Sequence[str]) -> bool:
    """Whether staff assigned exactly what the suggestion put on that truck."""
    if suggested is None:
        return False
    planned = sorted(t for part in suggested.parts for t in part.trade_ids)
    return planned == sorted(trade_ids)
