"""The yard's rules, without Kafka or HTTP: shipments, check-in and assignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.domain.errors import (
    ColdChainRequired,
    DispatchError,
    EmptyAssignment,
    InvalidCapacity,
    OverCapacity,
    ShipmentAlreadyAssigned,
    TruckAlreadyInYard,
    UnknownShipment,
    UnknownTruck,
)
from dispatch.domain.yard import (
    MAX_CAPACITY_G,
    Assignment,
    Shipment,
    ShipmentStatus,
    Truck,
    Yard,
)

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def shipment(shipment_id: str, weight_g: int = 1_000_000, *, cold_chain: bool = False) -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        lot_id=f"lot-{shipment_id}",
        farmer_id="farmer-1",
        merchant_id="merchant-1",
        variety="ganmibao",
        grade="extra",
        crates=100,
        weight_g=weight_g,
        destination="Lanzhou",
        cold_chain=cold_chain,
        traded_at=at(int(shipment_id.removeprefix("s"))),
    )


def truck(
    plate: str, capacity_g: int = 5_000_000, *, refrigerated: bool = False, minute: int = 0
) -> Truck:
    return Truck(
        plate=plate,
        driver="Wang",
        phone="",
        capacity_g=capacity_g,
        refrigerated=refrigerated,
        checked_in_by="gate-1",
        checked_in_at=at(minute),
    )


def assignment(
    shipment_id: str, plate: str, *, minute: int = 10, assignment_id: str = ""
) -> Assignment:
    return Assignment(
        assignment_id=assignment_id or f"a-{shipment_id}-{plate}",
        shipment_id=shipment_id,
        lot_id=f"lot-{shipment_id}",
        plate=plate,
        weight_g=1_000_000,
        cold_chain=False,
        assigned_by="clerk-1",
        assigned_at=at(minute),
    )


def yard_with(*shipments: Shipment, trucks: tuple[Truck, ...] = ()) -> Yard:
    yard = Yard()
    for s in shipments:
        yard.record_shipment(s)
    for t in trucks:
        yard.record_check_in(t)
    return yard


def test_a_trade_seen_twice_is_one_shipment() -> None:
    # Given a shipment already in the yard
    yard = yard_with(shipment("s1"))
    # When the same trade arrives again
    added = yard.record_shipment(shipment("s1"))
    # Then it is ignored
    assert added is False
    assert [s.shipment.shipment_id for s in yard.shipments()] == ["s1"]


@pytest.mark.parametrize("plate", ["甘H12345", "甘h12345", " 甘H12345 "])
def test_a_plate_already_in_the_yard_cannot_check_in_again(plate: str) -> None:
    # Given truck 甘H12345 in the yard
    yard = yard_with(trucks=(truck("甘H12345"),))
    # When the same plate, however typed, checks in
    # Then it is refused
    with pytest.raises(TruckAlreadyInYard):
        yard.ensure_can_check_in(plate, 1_000_000)


@pytest.mark.parametrize(
    ("capacity_g", "accepted"),
    [(0, False), (-1, False), (1, True), (MAX_CAPACITY_G, True), (MAX_CAPACITY_G + 1, False)],
)
def test_a_truck_needs_a_capacity_between_nothing_and_a_hundred_tonnes(
    capacity_g: int, accepted: bool
) -> None:
    yard = Yard()
    if accepted:
        yard.ensure_can_check_in("甘H12345", capacity_g)
    else:
        with pytest.raises(InvalidCapacity):
            yard.ensure_can_check_in("甘H12345", capacity_g)


@pytest.mark.parametrize(
    ("plate", "shipment_ids", "refusal"),
    [
        pytest.param("甘X00000", ["s1"], UnknownTruck, id="unknown truck"),
        pytest.param("甘A00001", ["s1", "s9"], UnknownShipment, id="unknown shipment"),
        pytest.param("甘A00001", ["s3"], ShipmentAlreadyAssigned, id="already assigned"),
        pytest.param("甘A00001", ["s1", "s1"], ShipmentAlreadyAssigned, id="listed twice"),
        pytest.param("甘A00001", ["s2"], ColdChainRequired, id="cold chain on a dry truck"),
        pytest.param("甘A00001", ["s1", "s4"], OverCapacity, id="heavier than the room left"),
        pytest.param("甘A00001", [], EmptyAssignment, id="no shipments"),
    ],
)
def test_an_assignment_that_breaks_a_rule_is_refused_whole(
    plate: str, shipment_ids: list[str], refusal: type[DispatchError]
) -> None:
    # Given a dry 5 t truck carrying s3 (1 t), and s1 (1 t), cold-chain s2 and s4 (3.5 t) waiting
    yard = yard_with(
        shipment("s1"),
        shipment("s2", cold_chain=True),
        shipment("s3"),
        shipment("s4", 3_500_000),
        trucks=(truck("甘A00001"),),
    )
    yard.record_assignment(assignment("s3", "甘A00001"))
    # When staff try to assign
    # Then the rule refuses it and nothing changes
    with pytest.raises(refusal):
        yard.plan_assignment(plate, shipment_ids)
    assert yard.truck("甘A00001").loaded_g == 1_000_000
    assert [s.shipment.shipment_id for s in yard.shipments(ShipmentStatus.WAITING)] == [
        "s1",
        "s2",
        "s4",
    ]


@pytest.mark.parametrize(
    ("refrigerated", "cold_chain"), [(True, True), (True, False), (False, False)]
)
def test_shipments_that_fill_a_truck_exactly_may_go_on_it(
    refrigerated: bool, cold_chain: bool
) -> None:
    # Given a 2 t truck and two 1 t shipments
    yard = yard_with(
        shipment("s1", cold_chain=cold_chain),
        shipment("s2"),
        trucks=(truck("甘A00001", 2_000_000, refrigerated=refrigerated),),
    )
    # When both are planned onto it
    planned = yard.plan_assignment("甘a00001", ["s1", "s2"])
    # Then both are accepted
    assert [s.shipment_id for s in planned] == ["s1", "s2"]


def test_recorded_assignments_load_the_truck_and_mark_the_shipment_assigned() -> None:
    # Given a 5 t truck and a 1 t shipment
    yard = yard_with(shipment("s1"), shipment("s2"), trucks=(truck("甘A00001"),))
    # When the shipment is assigned, and the same assignment is delivered again
    yard.record_assignment(assignment("s1", "甘A00001"))
    yard.record_assignment(assignment("s1", "甘A00001"))
    # Then the truck carries it once and has 4 t left
    load = yard.truck("甘A00001")
    assert (load.loaded_g, load.remaining_g, load.shipment_ids) == (1_000_000, 4_000_000, ("s1",))
    assert yard.shipment("s1").status is ShipmentStatus.ASSIGNED
    assert yard.shipment("s2").status is ShipmentStatus.WAITING


@pytest.mark.parametrize("earlier_first", [True, False])
def test_a_shipment_assigned_to_two_trucks_stays_on_the_earlier_one_in_any_order(
    earlier_first: bool,
) -> None:
    # Given two instances raced and put s1 on two trucks
    earlier = assignment("s1", "甘A00001", minute=10)
    later = assignment("s1", "甘A00002", minute=11)
    yard = yard_with(shipment("s1"), trucks=(truck("甘A00001"), truck("甘A00002", minute=1)))
    # When the rebuild reads them in either order
    first, second = (earlier, later) if earlier_first else (later, earlier)
    yard.record_assignment(first)
    loser = yard.record_assignment(second)
    # Then the earlier assignment holds and the later one is reported
    assert loser == later
    assert yard.shipment("s1").assignment == earlier
    assert [load.shipment_ids for load in yard.trucks()] == [("s1",), ()]


def test_an_assignment_read_before_its_shipment_and_truck_counts_once_they_arrive() -> None:
    # Given an assignment read before the trade and the check-in it refers to
    yard = Yard()
    yard.record_assignment(assignment("s1", "甘A00001"))
    # When the shipment and the truck arrive
    yard.record_shipment(shipment("s1"))
    yard.record_check_in(truck("甘A00001"))
    # Then the shipment is on the truck
    assert yard.truck("甘A00001").shipment_ids == ("s1",)
    assert yard.shipment("s1").status is ShipmentStatus.ASSIGNED


def test_trucks_are_listed_in_arrival_order_whatever_order_they_were_read_in() -> None:
    # Given check-ins read out of order (they come from several partitions)
    yard = yard_with(
        trucks=(truck("甘C3", minute=3), truck("甘A1", minute=1), truck("甘B2", minute=2))
    )
    # Then the yard lists them as they arrived
    assert [load.truck.plate for load in yard.trucks()] == ["甘A1", "甘B2", "甘C3"]


def test_the_first_check_in_of_a_plate_holds() -> None:
    yard = yard_with(trucks=(truck("甘A00001", 5_000_000),))
    assert yard.record_check_in(truck("甘A00001", 9_000_000, minute=5)) is False
    assert yard.truck("甘A00001").truck.capacity_g == 5_000_000
