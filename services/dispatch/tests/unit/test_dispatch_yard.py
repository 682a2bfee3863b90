"""The yard as a pure fold: shipments from trades, the gate, assignments, bays, and log order."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.domain.errors import (
    BayOccupied,
    ColdChainRequired,
    DestinationNotServed,
    DispatchError,
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
    UnknownTruck,
)
from dispatch.domain.yard import (
    MAX_CAPACITY_G,
    Assign,
    CheckIn,
    Decision,
    Move,
    Step,
    TakeBack,
    Trade,
    TruckStatus,
    Yard,
    YardDecision,
    group_by_shipment,
    shipment_id_for,
    tenths_c,
)

T = 1_000_000
"""One tonne in grams."""

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)
BAYS = 3


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def trade(
    n: int,
    weight_g: int = T,
    *,
    merchant: str = "m-1",
    dest: str = "上海",
    cold: bool = False,
    minute: float | None = None,
) -> Trade:
    return Trade(
        trade_id=f"ganmibao.extra:{n}",
        lot_id=f"lot-{n}",
        farmer_id=f"farmer-{n % 4}",
        merchant_id=merchant,
        variety="ganmibao",
        grade="extra",
        crates=max(1, weight_g // 20_000),
        weight_g=weight_g,
        destination=dest,
        cold_chain=cold,
        traded_at=minutes(n if minute is None else minute),
    )


def gate(
    plate: str,
    capacity_g: int = 10 * T,
    *,
    fridge: bool = False,
    setpoint: int | None = 80,
    dests: Iterable[str] = (),
    at: datetime = T0,
    visit_id: str | None = None,
) -> CheckIn:
    return CheckIn(
        visit_id=visit_id or f"visit:{plate}:{at.isoformat()}",
        plate=plate,
        driver="王师傅",
        phone="13900000000",
        capacity_g=capacity_g,
        refrigerated=fridge,
        setpoint_tenths_c=setpoint if fridge else None,
        destinations=frozenset(dests),
        by="gate-1",
        at=at,
    )


_assignment_ids = itertools.count(1)


def assign(
    visit: CheckIn, *trades: Trade, at: datetime = T0, by: str = "clerk-1", aid: str | None = None
) -> Assign:
    first = trades[0]
    return Assign(
        assignment_id=aid or f"assignment-{next(_assignment_ids)}",
        visit_id=visit.visit_id,
        plate=visit.plate,
        shipment_id=first.shipment_id,
        merchant_id=first.merchant_id,
        destination=first.destination,
        cold_chain=first.cold_chain,
        lines=tuple(t.line() for t in trades),
        decision=Decision.MANUAL,
        suggestion_id=None,
        by=by,
        at=at,
    )


def take_back(a: Assign, *, at: datetime = T0, by: str = "clerk-1") -> TakeBack:
    return TakeBack(a.assignment_id, a.visit_id, a.plate, "wrong truck", by, at)


def move(
    visit: CheckIn,
    status: TruckStatus,
    bay: int | None = None,
    *,
    at: datetime = T0,
    by: str = "yard-1",
) -> Move:
    return Move(visit.visit_id, visit.plate, status, bay, by, at)


@pytest.fixture
def yard() -> Yard:
    return Yard(bays=BAYS)


def truck_in(yard: Yard, status: TruckStatus, plate: str = "甘H00001") -> CheckIn:
    """A truck driven to ``status`` along the only road there (bay 1 when it loads)."""
    visit = gate(plate)
    yard.apply(visit)
    if status is TruckStatus.WAITING:
        return visit
    goods = trade(900 + len(yard.assignments(include_taken_back=True)), merchant=f"m-{plate}")
    yard.record_trade(goods)
    yard.apply(assign(visit, goods))
    road = [TruckStatus.ASSIGNED, TruckStatus.LOADING, TruckStatus.LOADED, TruckStatus.DEPARTED]
    for step in road[1 : road.index(status) + 1]:
        yard.apply(move(visit, step, 1 if step is TruckStatus.LOADING else None))
    assert yard.visit_by_id(visit.visit_id).status is status
    return visit


def waiting_ids(yard: Yard) -> list[list[str]]:
    return [[t.trade_id for t in s.trades] for s in yard.waiting()]


# Shipments: trades grouped per merchant, destination and cold chain


def test_trades_of_one_merchant_destination_and_cold_chain_wait_as_one_shipment(
    yard: Yard,
) -> None:
    # Given two trades alike, and one differing from them in each of the three respects
    alike = [trade(1, 2 * T), trade(2, 3 * T)]
    apart = [trade(3, merchant="m-2"), trade(4, dest="兰州"), trade(5, cold=True)]
    for t in [*alike, *apart]:
        assert yard.record_trade(t)
    # When the yard groups what waits
    shipments = {s.shipment_id: s for s in yard.waiting()}
    # Then the alike trades are one shipment with their weights and crates added up
    together = shipments[shipment_id_for("m-1", "上海", False)]
    assert [t.trade_id for t in together.trades] == ["ganmibao.extra:1", "ganmibao.extra:2"]
    assert (together.weight_g, together.crates) == (5 * T, 250)
    assert (together.merchant_id, together.destination, together.cold_chain) == (
        "m-1",
        "上海",
        False,
    )
    # And each different one waits in a shipment of its own
    assert len(shipments) == 4
    for t in apart:
        assert [x.trade_id for x in shipments[t.shipment_id].trades] == [t.trade_id]


@pytest.mark.parametrize(
    "other",
    [("m-2", "上海", False), ("m-1", "兰州", False), ("m-1", "上海", True)],
    ids=["merchant", "destination", "cold-chain"],
)
def test_a_shipment_id_names_merchant_destination_and_cold_chain(
    other: tuple[str, str, bool],
) -> None:
    assert shipment_id_for("m-1", "上海", False) == shipment_id_for("m-1", "上海", False)
    assert shipment_id_for(*other) != shipment_id_for("m-1", "上海", False)


def test_waiting_shipments_are_listed_longest_waiting_first(yard: Yard) -> None:
    # Given trades arriving out of time order: m-2's first trade is the oldest of all
    for t in [
        trade(5, merchant="m-1"),
        trade(3, merchant="m-3"),
        trade(4, merchant="m-2", minute=20),
        trade(1, merchant="m-2", minute=1),
        trade(2, merchant="m-1"),
    ]:
        yard.record_trade(t)
    # Then shipments come longest waiting first, each with its trades in time order
    assert [s.merchant_id for s in yard.waiting()] == ["m-2", "m-1", "m-3"]
    assert waiting_ids(yard)[:2] == [
        ["ganmibao.extra:1", "ganmibao.extra:4"],
        ["ganmibao.extra:2", "ganmibao.extra:5"],
    ]
    assert yard.waiting()[0].waiting_since == minutes(1)


def test_a_trade_seen_again_is_ignored(yard: Yard) -> None:
    assert yard.record_trade(trade(1, 2 * T))
    version = yard.version
    # When the same trade is delivered again (a redelivery of its record)
    assert not yard.record_trade(trade(1, 2 * T))
    # Then the yard neither changes nor counts its weight twice
    assert yard.version == version
    [shipment] = yard.waiting()
    assert shipment.weight_g == 2 * T


def test_group_by_shipment_keeps_the_order_shipments_were_first_seen() -> None:
    trades = [trade(1, merchant="m-2"), trade(2, merchant="m-1"), trade(3, merchant="m-2")]
    groups = group_by_shipment(trades)
    assert [[t.trade_id for t in g.trades] for g in groups] == [
        ["ganmibao.extra:1", "ganmibao.extra:3"],
        ["ganmibao.extra:2"],
    ]


def test_asking_for_a_shipment_that_does_not_wait_is_refused(yard: Yard) -> None:
    goods = trade(1)
    yard.record_trade(goods)
    visit = gate("甘H00001")
    yard.apply(visit)
    yard.apply(assign(visit, goods))
    with pytest.raises(UnknownShipment):
        yard.shipment(goods.shipment_id)


# The gate


@pytest.mark.parametrize(
    ("capacity_g", "stands"),
    [(0, False), (-T, False), (1, True), (MAX_CAPACITY_G, True), (MAX_CAPACITY_G + 1, False)],
    ids=["zero", "negative", "one-gram", "100-t", "over-100-t"],
)
def test_a_truck_checks_in_only_with_a_capacity_it_can_be_loaded_against(
    yard: Yard, capacity_g: int, stands: bool
) -> None:
    decision = gate("甘H00001", capacity_g)
    if stands:
        yard.apply(decision)
        assert yard.visit("甘H00001").remaining_g == capacity_g
    else:
        with pytest.raises(InvalidCapacity):
            yard.apply(decision)
        assert (yard.version, yard.visits()) == (0, [])


def test_a_checked_in_truck_waits_with_its_first_step_recorded(yard: Yard) -> None:
    decision = gate("甘H00001", fridge=True, setpoint=75, dests=["上海", "杭州"])
    yard.apply(decision)
    visit = yard.visit("甘h00001 ")
    assert visit.visit_id == decision.visit_id
    assert (visit.status, visit.bay, visit.loaded_g, visit.fill_ratio) == (
        TruckStatus.WAITING,
        None,
        0,
        0.0,
    )
    assert visit.cold_chain_ready
    assert visit.history == [Step(TruckStatus.WAITING, T0, "gate-1")]
    assert (visit.serves("上海"), visit.serves("兰州")) == (True, False)


def test_the_same_plate_twice_while_in_the_yard_is_refused(yard: Yard) -> None:
    yard.apply(gate("甘H00001"))
    version = yard.version
    # The gate typed it differently, but it is the same plate
    with pytest.raises(TruckAlreadyInYard):
        yard.apply(gate(" 甘h00001", at=minutes(5)))
    assert yard.version == version
    assert len(yard.visits(include_departed=True)) == 1


def test_a_plate_that_departed_and_came_back_is_a_new_visit(yard: Yard) -> None:
    first = truck_in(yard, TruckStatus.DEPARTED)
    # When the same truck comes back in the afternoon
    second = gate(first.plate, at=minutes(600))
    yard.apply(second)
    # Then it waits as a new visit with an empty load, and the first visit stays on record
    visit = yard.visit(first.plate)
    assert visit.visit_id == second.visit_id != first.visit_id
    assert (visit.status, visit.loaded_g) == (TruckStatus.WAITING, 0)
    assert yard.visit_by_id(first.visit_id).status is TruckStatus.DEPARTED
    assert yard.latest_visit(first.plate).visit_id == second.visit_id
    assert [v.visit_id for v in yard.visits(include_departed=True)] == [
        first.visit_id,
        second.visit_id,
    ]
    assert [v.visit_id for v in yard.visits()] == [second.visit_id]


def test_a_departed_truck_is_named_as_departed_and_an_unknown_one_as_unknown(yard: Yard) -> None:
    departed = truck_in(yard, TruckStatus.DEPARTED)
    with pytest.raises(TruckDeparted):
        yard.visit(departed.plate)
    assert yard.latest_visit(departed.plate).visit_id == departed.visit_id
    with pytest.raises(UnknownTruck):
        yard.visit("甘Z99999")
    with pytest.raises(UnknownTruck):
        yard.latest_visit("甘Z99999")


# Assignment rules


@pytest.mark.parametrize(
    ("truck", "goods", "error"),
    [
        pytest.param(dict(capacity_g=3 * T), dict(weight_g=3 * T), None, id="exactly-full"),
        pytest.param(dict(capacity_g=3 * T), dict(weight_g=3 * T + 1), OverCapacity, id="over"),
        pytest.param({}, dict(cold=True), ColdChainRequired, id="cold-on-dry"),
        pytest.param(dict(fridge=True, setpoint=80), dict(cold=True), None, id="cold-at-8.0"),
        pytest.param(dict(fridge=True, setpoint=70), dict(cold=True), None, id="cold-at-7.0"),
        pytest.param(dict(fridge=True, setpoint=100), dict(cold=True), None, id="cold-at-10.0"),
        pytest.param(
            dict(fridge=True, setpoint=69), dict(cold=True), SetpointOutOfRange, id="cold-at-6.9"
        ),
        pytest.param(
            dict(fridge=True, setpoint=101), dict(cold=True), SetpointOutOfRange, id="cold-at-10.1"
        ),
        pytest.param(
            dict(fridge=True, setpoint=-180), dict(cold=True), SetpointOutOfRange, id="frozen"
        ),
        pytest.param(dict(fridge=True, setpoint=-180), {}, None, id="dry-goods-on-any-reefer"),
        pytest.param(dict(dests=["兰州"]), {}, DestinationNotServed, id="destination-not-served"),
        pytest.param(dict(dests=["兰州", "上海"]), {}, None, id="destination-served"),
        pytest.param(dict(dests=[]), dict(dest="乌鲁木齐"), None, id="goes-anywhere"),
    ],
)
def test_an_assignment_stands_only_within_the_loading_rules(
    yard: Yard, truck: dict[str, Any], goods: dict[str, Any], error: type[DispatchError] | None
) -> None:
    # Given a truck and a waiting trade
    visit = gate("甘H00001", **truck)
    yard.apply(visit)
    t = trade(1, **goods)
    yard.record_trade(t)
    version = yard.version
    decision = assign(visit, t)
    if error is None:
        # Then it stands: the trade is on the truck and no longer waits
        yard.apply(decision)
        on_truck = yard.visit(visit.plate)
        assert (on_truck.status, on_truck.loaded_g) == (TruckStatus.ASSIGNED, t.weight_g)
        assert on_truck.remaining_g == visit.capacity_g - t.weight_g
        assert yard.holder(t.trade_id) == decision
        assert yard.waiting() == []
    else:
        # Or it is refused and nothing changes
        with pytest.raises(error):
            yard.apply(decision)
        assert yard.version == version
        assert yard.visit(visit.plate).status is TruckStatus.WAITING
        assert waiting_ids(yard) == [[t.trade_id]]


def test_a_setpoint_refusal_names_the_setting_and_the_range(yard: Yard) -> None:
    visit = gate("甘C00001", fridge=True, setpoint=45)
    yard.apply(visit)
    with pytest.raises(SetpointOutOfRange) as refused:
        yard.apply(assign(visit, trade(1, cold=True)))
    assert "4.5 °C" in str(refused.value)
    assert "7.0-10.0" in str(refused.value)
    assert "4.5" in refused.value.message_zh


@pytest.mark.parametrize(("tenths", "text"), [(75, "7.5"), (100, "10.0"), (0, "0.0"), (-5, "-0.5")])
def test_temperatures_read_as_people_write_them(tenths: int, text: str) -> None:
    assert tenths_c(tenths) == text


def test_loads_add_up_against_the_room_left(yard: Yard) -> None:
    visit = gate("甘H00001", 5 * T)
    yard.apply(visit)
    first, second, third = trade(1, 3 * T), trade(2, 2 * T, merchant="m-2"), trade(3, 1)
    yard.apply(assign(visit, first))
    yard.apply(assign(visit, second))
    with pytest.raises(OverCapacity) as refused:
        yard.apply(assign(visit, third))
    assert (refused.value.requested_g, refused.value.remaining_g) == (1, 0)
    assert yard.visit(visit.plate).fill_ratio == 1.0


@pytest.mark.parametrize("same_truck", [True, False], ids=["same-truck", "other-truck"])
def test_a_trade_already_on_a_truck_is_not_assigned_again(yard: Yard, same_truck: bool) -> None:
    a, b = gate("甘H00001"), gate("甘H00002")
    yard.apply(a)
    yard.apply(b)
    t1, t2 = trade(1), trade(2)
    first = assign(a, t1)
    yard.apply(first)
    version = yard.version
    # When the same trade goes on a truck again, with a second trade that is free
    with pytest.raises(ShipmentAlreadyAssigned) as refused:
        yard.apply(assign(a if same_truck else b, t2, t1))
    # Then the whole decision is refused, naming the truck that holds the trade
    assert refused.value.plate == a.plate
    assert yard.version == version
    assert yard.holder(t1.trade_id) == first
    assert yard.holder(t2.trade_id) is None


@pytest.mark.parametrize(
    ("status", "error"),
    [(TruckStatus.LOADED, TruckAlreadyLoaded), (TruckStatus.DEPARTED, TruckDeparted)],
)
def test_nothing_is_assigned_to_a_truck_that_is_loaded_or_gone(
    yard: Yard, status: TruckStatus, error: type[DispatchError]
) -> None:
    visit = truck_in(yard, status)
    version = yard.version
    with pytest.raises(error):
        yard.apply(assign(visit, trade(1)))
    assert yard.version == version


def test_an_assignment_to_a_visit_the_yard_does_not_know_is_refused(yard: Yard) -> None:
    known = gate("甘H00001")
    yard.apply(known)
    with pytest.raises(UnknownTruck):
        yard.apply(assign(gate("甘H00001", visit_id="no-such-visit"), trade(1)))
    # A visit id with another plate is not that truck either
    with pytest.raises(UnknownTruck):
        yard.apply(assign(gate("甘H00002", visit_id=known.visit_id), trade(1)))


# Taking goods back off a truck


def test_taking_an_assignment_back_frees_its_trades_to_wait_again(yard: Yard) -> None:
    visit = gate("甘H00001")
    yard.apply(visit)
    t1, t2 = trade(1), trade(2, merchant="m-2")
    for t in (t1, t2):
        yard.record_trade(t)
    first, second = assign(visit, t1, at=minutes(10)), assign(visit, t2, at=minutes(20))
    yard.apply(first)
    yard.apply(second)
    # When one of two assignments is taken back, the truck still has a load
    yard.apply(take_back(first, at=minutes(30), by="clerk-2"))
    assert yard.visit(visit.plate).status is TruckStatus.ASSIGNED
    assert waiting_ids(yard) == [[t1.trade_id]]
    assert not yard.is_standing(first.assignment_id)
    assert [a.assignment_id for a in yard.assignments()] == [second.assignment_id]
    assert [a.assignment_id for a in yard.assignments(include_taken_back=True)] == [
        first.assignment_id,
        second.assignment_id,
    ]
    # And when the other goes too, the truck waits again, and says who made it wait and when
    yard.apply(take_back(second, at=minutes(40), by="clerk-3"))
    on_truck = yard.visit(visit.plate)
    assert (on_truck.status, on_truck.loaded_g) == (TruckStatus.WAITING, 0)
    assert on_truck.history[-1] == Step(TruckStatus.WAITING, minutes(40), "clerk-3")
    assert waiting_ids(yard) == [[t1.trade_id], [t2.trade_id]]
    # And the freed trades can go on a truck again
    yard.apply(assign(visit, t1, t2))


@pytest.mark.parametrize(
    ("status", "error"),
    [(TruckStatus.LOADED, TruckAlreadyLoaded), (TruckStatus.DEPARTED, TruckDeparted)],
)
def test_goods_are_not_taken_back_once_the_truck_is_loaded(
    yard: Yard, status: TruckStatus, error: type[DispatchError]
) -> None:
    visit = truck_in(yard, status)
    [standing] = yard.assignments()
    version = yard.version
    with pytest.raises(error):
        yard.apply(take_back(standing))
    assert yard.version == version
    assert yard.is_standing(standing.assignment_id)
    assert yard.visit_by_id(visit.visit_id).loaded_g == T


def test_an_assignment_is_taken_back_once(yard: Yard) -> None:
    truck_in(yard, TruckStatus.ASSIGNED)
    [standing] = yard.assignments()
    yard.apply(take_back(standing))
    with pytest.raises(UnknownAssignment):
        yard.apply(take_back(standing))
    with pytest.raises(UnknownAssignment):
        yard.apply(TakeBack("no-such", standing.visit_id, standing.plate, "", "clerk-1", T0))


# The way through the yard


def test_a_truck_goes_through_the_yard_and_its_history_says_who_moved_it_when(
    yard: Yard,
) -> None:
    visit = gate("甘H00001")
    yard.apply(visit)
    goods = trade(1, 4 * T)
    yard.record_trade(goods)
    yard.apply(assign(visit, goods, at=minutes(10), by="clerk-1"))
    yard.apply(move(visit, TruckStatus.LOADING, 2, at=minutes(20), by="yard-1"))
    assert yard.visit(visit.plate).bay == 2
    assert {b: v.visit_id for b, v in yard.occupied_bays().items()} == {2: visit.visit_id}
    yard.apply(move(visit, TruckStatus.LOADED, at=minutes(50), by="yard-2"))
    # Loaded, it leaves the bay (the bay stays on its record)
    assert yard.occupied_bays() == {}
    assert yard.visit(visit.plate).bay == 2
    yard.apply(move(visit, TruckStatus.DEPARTED, at=minutes(65), by="gate-2"))
    done = yard.visit_by_id(visit.visit_id)
    assert done.status is TruckStatus.DEPARTED
    assert done.history == [
        Step(TruckStatus.WAITING, T0, "gate-1"),
        Step(TruckStatus.ASSIGNED, minutes(10), "clerk-1"),
        Step(TruckStatus.LOADING, minutes(20), "yard-1", 2),
        Step(TruckStatus.LOADED, minutes(50), "yard-2"),
        Step(TruckStatus.DEPARTED, minutes(65), "gate-2"),
    ]
    assert (done.departed_at, done.moved_at(TruckStatus.LOADING)) == (minutes(65), minutes(20))
    assert done.loaded_g == 4 * T


S = TruckStatus


@pytest.mark.parametrize(
    ("start", "wanted", "error"),
    [
        (S.WAITING, S.LOADING, NothingToLoad),
        (S.WAITING, S.LOADED, InvalidTransition),
        (S.WAITING, S.WAITING, InvalidTransition),
        (S.WAITING, S.ASSIGNED, InvalidTransition),
        (S.ASSIGNED, S.LOADED, InvalidTransition),
        (S.ASSIGNED, S.DEPARTED, InvalidTransition),
        (S.ASSIGNED, S.WAITING, InvalidTransition),
        (S.ASSIGNED, S.ASSIGNED, InvalidTransition),
        (S.LOADING, S.DEPARTED, InvalidTransition),
        (S.LOADING, S.WAITING, InvalidTransition),
        (S.LOADING, S.ASSIGNED, InvalidTransition),
        (S.LOADED, S.LOADING, InvalidTransition),
        (S.LOADED, S.LOADED, InvalidTransition),
        (S.LOADED, S.WAITING, InvalidTransition),
        (S.LOADED, S.ASSIGNED, InvalidTransition),
        (S.DEPARTED, S.LOADING, TruckDeparted),
        (S.DEPARTED, S.LOADED, TruckDeparted),
        (S.DEPARTED, S.DEPARTED, TruckDeparted),
        (S.DEPARTED, S.WAITING, TruckDeparted),
    ],
    ids=lambda v: v.value if isinstance(v, TruckStatus) else None,
)
def test_a_truck_moves_only_forward_one_step_at_a_time(
    yard: Yard, start: TruckStatus, wanted: TruckStatus, error: type[DispatchError]
) -> None:
    visit = truck_in(yard, start)
    version, history = yard.version, list(yard.visit_by_id(visit.visit_id).history)
    with pytest.raises(error):
        yard.apply(move(visit, wanted, 2 if wanted is S.LOADING else None))
    after = yard.visit_by_id(visit.visit_id)
    assert (after.status, after.history, yard.version) == (start, history, version)


@pytest.mark.parametrize(
    ("start", "wanted", "bay"),
    [
        (S.ASSIGNED, S.LOADING, 2),
        (S.LOADING, S.LOADING, 2),
        (S.LOADING, S.LOADED, None),
        (S.WAITING, S.DEPARTED, None),
    ],
    ids=["to-a-bay", "to-another-bay", "loaded", "leaves-empty"],
)
def test_the_steps_forward_stand(
    yard: Yard, start: TruckStatus, wanted: TruckStatus, bay: int | None
) -> None:
    visit = truck_in(yard, start)
    yard.apply(move(visit, wanted, bay))
    assert yard.visit_by_id(visit.visit_id).status is wanted


def test_a_truck_whose_load_was_taken_back_at_the_bay_leaves_empty_and_frees_the_bay(
    yard: Yard,
) -> None:
    visit = truck_in(yard, S.LOADING)
    [standing] = yard.assignments()
    with pytest.raises(InvalidTransition):
        yard.apply(move(visit, S.DEPARTED))
    yard.apply(take_back(standing))
    yard.apply(move(visit, S.DEPARTED, by="gate-2"))
    assert yard.visit_by_id(visit.visit_id).status is S.DEPARTED
    assert yard.occupied_bays() == {}
    assert [t.trade_id for s in yard.waiting() for t in s.trades] == [
        line.trade_id for line in standing.lines
    ]


@pytest.mark.parametrize("bay", [0, BAYS + 1, None])
def test_a_bay_the_yard_does_not_have_is_refused(yard: Yard, bay: int | None) -> None:
    visit = truck_in(yard, S.ASSIGNED)
    with pytest.raises(UnknownBay):
        yard.apply(move(visit, S.LOADING, bay))
    assert yard.visit(visit.plate).status is S.ASSIGNED
    assert yard.occupied_bays() == {}


def test_one_truck_loads_at_a_bay_at_a_time_and_a_loaded_truck_frees_it(yard: Yard) -> None:
    first = truck_in(yard, S.LOADING, "甘H00001")
    second = truck_in(yard, S.ASSIGNED, "甘H00002")
    with pytest.raises(BayOccupied) as refused:
        yard.apply(move(second, S.LOADING, 1))
    assert refused.value.plate == first.plate
    yard.apply(move(first, S.LOADED))
    yard.apply(move(second, S.LOADING, 1))
    assert {b: v.plate for b, v in yard.occupied_bays().items()} == {1: second.plate}


def test_a_loading_truck_moves_to_another_bay_and_frees_the_first(yard: Yard) -> None:
    visit = truck_in(yard, S.LOADING)
    yard.apply(move(visit, S.LOADING, 3, at=minutes(5)))
    assert {b: v.visit_id for b, v in yard.occupied_bays().items()} == {3: visit.visit_id}
    assert [(s.status, s.bay) for s in yard.visit(visit.plate).history[-2:]] == [
        (S.LOADING, 1),
        (S.LOADING, 3),
    ]
    # The bay it left is free for the next truck
    other = truck_in(yard, S.ASSIGNED, "甘H00002")
    yard.apply(move(other, S.LOADING, 1))


def test_dwell_runs_while_a_truck_is_in_the_yard_and_stops_when_it_leaves(yard: Yard) -> None:
    visit = gate("甘H00001", at=T0)
    yard.apply(visit)
    goods = trade(1)
    yard.apply(assign(visit, goods, at=minutes(10)))
    in_yard = yard.visit(visit.plate)
    assert in_yard.dwell_s(minutes(30)) == 1800
    assert in_yard.dwell_s(minutes(90)) == 5400
    assert in_yard.dwell_s(T0 - timedelta(minutes=1)) == 0
    yard.apply(move(visit, S.LOADING, 1, at=minutes(40)))
    yard.apply(move(visit, S.LOADED, at=minutes(80)))
    yard.apply(move(visit, S.DEPARTED, at=minutes(100)))
    assert in_yard.dwell_s(minutes(500)) == 6000


# Log order decides, the same way everywhere


def snapshot(yard: Yard) -> tuple[object, ...]:
    """Everything the yard would show, in comparable form."""
    return (
        yard.version,
        [
            (v.visit_id, v.status, v.bay, sorted(v.assignments), v.history, v.loaded_g)
            for v in yard.visits(include_departed=True)
        ],
        yard.assignments(include_taken_back=True),
        [a.assignment_id for a in yard.assignments()],
        yard.waiting(),
        {bay: v.visit_id for bay, v in yard.occupied_bays().items()},
    )


Entry = Trade | YardDecision


def fold(yard: Yard, entries: Iterable[Entry]) -> list[str | None]:
    """Fold records as a reader would; each decision's outcome is the rule it broke, if any."""
    outcomes: list[str | None] = []
    for entry in entries:
        if isinstance(entry, Trade):
            yard.record_trade(entry)
            continue
        try:
            yard.apply(entry)
        except DispatchError as exc:
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append(None)
    return outcomes


def test_two_assignments_of_one_trade_race_and_the_first_in_the_log_stands() -> None:
    # Given two instances that each accepted the same trade for a different truck
    a, b = gate("甘H00001"), gate("甘H00002")
    t1, t2 = trade(1), trade(2)
    from_one = assign(a, t1, by="clerk-at-instance-1")
    from_two = assign(b, t1, t2, by="clerk-at-instance-2")
    for first, second in [(from_one, from_two), (from_two, from_one)]:
        log: list[Entry] = [t1, t2, a, b, first, second]
        # When every instance folds the log in its order
        yards = [Yard(BAYS), Yard(BAYS), Yard(BAYS)]
        outcomes = [fold(y, log) for y in yards]
        # Then in each one the first stands and the second is refused, whole
        assert outcomes == [[None, None, None, "ShipmentAlreadyAssigned"]] * 3
        for y in yards:
            assert [x.assignment_id for x in y.assignments()] == [first.assignment_id]
            assert y.holder(t1.trade_id) == first
        assert len({repr(snapshot(y)) for y in yards}) == 1


def random_day(rng: random.Random) -> tuple[list[Trade], list[YardDecision]]:
    """Trades and a day's decisions, many of which break a rule when their turn comes.

    Most decisions are what staff would try next (judged against a yard folded alongside),
    the rest are random, so the day holds departures as well as plenty of refusals.
    """
    trades = [
        trade(
            n,
            rng.randrange(T // 2, 4 * T, 1000),
            merchant=rng.choice(["m-1", "m-2", "m-3"]),
            dest=rng.choice(["上海", "杭州"]),
            cold=rng.random() < 0.3,
            minute=rng.randrange(0, 300),
        )
        for n in range(1, 15)
    ]
    check_ins = [
        gate(
            f"甘H0000{k}",
            rng.randrange(3, 13) * T,
            fridge=rng.random() < 0.5,
            setpoint=rng.choice([40, 80, 95, 120]),
            dests=rng.sample(["上海", "杭州", "兰州"], rng.randrange(0, 3)),
            at=minutes(k),
        )
        for k in range(1, 6)
    ]
    shadow = Yard(BAYS)
    fold(shadow, trades)
    decisions: list[YardDecision] = []
    later = list(check_ins[3:])
    made: list[Assign] = []
    groups = group_by_shipment(trades)
    following = {S.WAITING: S.LOADING, S.ASSIGNED: S.LOADING, S.LOADING: S.LOADED}

    def decide(decision: YardDecision) -> None:
        decisions.append(decision)
        fold(shadow, [decision])

    for visit in check_ins[:3]:
        decide(visit)
    for step in range(40):
        at = minutes(60 + step)
        roll = rng.random()
        visits = [d for d in decisions if isinstance(d, CheckIn)]
        if later and roll < 0.08:
            decide(later.pop())
        elif roll < 0.5:
            group = rng.choice(groups)
            chosen = rng.sample(group.trades, rng.randrange(1, len(group.trades) + 1))
            made.append(assign(rng.choice(visits), *chosen, at=at))
            decide(made[-1])
        elif roll < 0.62 and made:
            standing = shadow.assignments()
            pick = rng.choice(standing if standing and rng.random() < 0.7 else made)
            decide(take_back(pick, at=at))
        elif roll < 0.95:
            visit = rng.choice(visits)
            known = {v.visit_id: v.status for v in shadow.visits(include_departed=True)}
            current = known.get(visit.visit_id)
            status = (
                following.get(current, S.DEPARTED) if current and rng.random() < 0.75 else None
            ) or rng.choice([S.LOADING, S.LOADED, S.DEPARTED])
            bay = rng.randrange(1, BAYS + 1) if status is S.LOADING else None
            decide(move(visit, status, bay, at=at))
        else:
            # A departed plate comes back, or a plate still inside is checked in twice
            again = rng.choice(visits)
            decide(gate(again.plate, again.capacity_g, at=at, visit_id=f"again-{step}"))
    return trades, decisions


def interleave(
    rng: random.Random, trades: Sequence[Trade], decisions: Sequence[YardDecision]
) -> list[Entry]:
    """The two logs as one reader may meet them: decisions in log order, trades anywhere."""
    shuffled = list(trades)
    rng.shuffle(shuffled)
    labels = [True] * len(decisions) + [False] * len(shuffled)
    rng.shuffle(labels)
    ds, ts = iter(decisions), iter(shuffled)
    return [next(ds) if is_decision else next(ts) for is_decision in labels]


@pytest.mark.parametrize("seed", range(25))
def test_trades_and_decisions_read_in_any_interleaving_give_the_same_yard(seed: int) -> None:
    rng = random.Random(seed)
    trades, decisions = random_day(rng)
    # Given the yard as it is when every trade was read before any decision
    reference = Yard(BAYS)
    expected = fold(reference, [*trades, *decisions])
    # The day is not trivial: some decisions stand and some lose to the ones before them
    assert None in expected
    assert any(outcome is not None for outcome in expected)
    for _ in range(6):
        # When another instance reads the trades at other moments relative to the decisions
        other = Yard(BAYS)
        outcomes = fold(other, interleave(rng, trades, decisions))
        # Then it judges every decision alike and reaches the same yard
        assert outcomes == expected
        assert other.waiting() == reference.waiting()
        assert other.assignments() == reference.assignments()
        assert snapshot(other) == snapshot(reference)
    # And a trade is never on two standing assignments, nor a truck over its capacity
    held = [line.trade_id for a in reference.assignments() for line in a.lines]
    assert len(held) == len(set(held))
    for visit in reference.visits(include_departed=True):
        assert visit.loaded_g <= visit.checked_in.capacity_g


def test_the_same_log_folded_twice_gives_the_same_yard() -> None:
    trades, decisions = random_day(random.Random(99))
    log = [*decisions[:10], *trades, *decisions[10:]]
    first, second = Yard(BAYS), Yard(BAYS)
    assert fold(first, log) == fold(second, log)
    assert snapshot(first) == snapshot(second)
