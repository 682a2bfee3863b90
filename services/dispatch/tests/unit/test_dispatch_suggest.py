"""Suggested loads: from the yard to a planner's inputs, and back to trades per truck."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dispatch.bootstrap import GREEDY, build_in_memory, cp_sat
from dispatch.domain import loads
from dispatch.domain.errors import DispatchError
from dispatch.domain.suggest import (
    Part,
    TruckLoad,
    epoch_s,
    planner_inputs,
    same_load,
    split,
    suggestion_id,
)
from dispatch.domain.yard import (
    Assign,
    CheckIn,
    Decision,
    Move,
    Shipment,
    Trade,
    TruckStatus,
    Yard,
    group_by_shipment,
)
from dispatch.service import AssignRequest, CheckInRequest, DispatchService
from melon_contracts.events import TradeExecuted
from melon_contracts.reference import Grade

T = 1_000_000
"""One tonne in grams."""

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)


def trade(
    n: int, weight_g: int = T, *, merchant: str = "m-1", dest: str = "上海", cold: bool = False
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
        traded_at=T0 + timedelta(minutes=n),
    )


def shipment_of(*trades: Trade) -> Shipment:
    [shipment] = group_by_shipment(trades)
    return shipment


def gate(
    plate: str,
    capacity_g: int = 10 * T,
    *,
    fridge: bool = False,
    setpoint: int = 80,
    dests: Iterable[str] = (),
    minute: int = 0,
) -> CheckIn:
    return CheckIn(
        visit_id=f"visit:{plate}",
        plate=plate,
        driver="王师傅",
        phone="",
        capacity_g=capacity_g,
        refrigerated=fridge,
        setpoint_tenths_c=setpoint if fridge else None,
        destinations=frozenset(dests),
        by="gate-1",
        at=T0 + timedelta(minutes=minute),
    )


_ids = itertools.count(1)


def assign(visit: CheckIn, *trades: Trade) -> Assign:
    first = trades[0]
    return Assign(
        assignment_id=f"assignment-{next(_ids)}",
        visit_id=visit.visit_id,
        plate=visit.plate,
        shipment_id=first.shipment_id,
        merchant_id=first.merchant_id,
        destination=first.destination,
        cold_chain=first.cold_chain,
        lines=tuple(t.line() for t in trades),
        decision=Decision.MANUAL,
        suggestion_id=None,
        by="clerk-1",
        at=T0,
    )


def move(visit: CheckIn, status: TruckStatus, bay: int | None = None) -> Move:
    return Move(visit.visit_id, visit.plate, status, bay, "yard-1", T0)


def trade_ids(parts: Iterable[Part]) -> list[str]:
    return [t for part in parts for t in part.trade_ids]


# Splitting a shipment no truck has room for


@pytest.mark.parametrize(
    ("weights_t", "room_t"),
    [
        ([4, 3, 3, 2, 2], 5),
        ([7, 2, 2], 5),
        ([1, 1, 1, 1, 1, 1, 1], 2),
        ([6, 6, 6], 6),
        ([2.5, 2.5, 2.5, 2.5, 2.5], 7.5),
    ],
)
def test_a_shipment_heavier_than_the_room_is_split_into_parts_that_fit(
    weights_t: list[float], room_t: float
) -> None:
    trades = [trade(n, int(w * T)) for n, w in enumerate(weights_t, start=1)]
    shipment = shipment_of(*trades)
    room_g = int(room_t * T)
    parts = split(shipment, room_g)
    # Every trade is in exactly one part, of this shipment, in trading order
    assert sorted(trade_ids(parts)) == sorted(t.trade_id for t in trades)
    assert all(p.shipment == shipment for p in parts)
    for part in parts:
        assert list(part.trades) == sorted(part.trades, key=lambda t: t.traded_at)
        # And no part is heavier than the room, unless it is one trade heavier on its own
        assert part.weight_g <= room_g or len(part.trades) == 1
    assert len(parts) > 1
    assert [p.part_id for p in parts] == [
        f"{shipment.shipment_id}#{n}" for n in range(1, len(parts) + 1)
    ]
    # The parts are as few as the first fit, heaviest first, makes them
    assert len(parts) < len(trades) or all(
        a.weight_g + b.weight_g > room_g for a, b in itertools.combinations(parts, 2)
    )


def test_a_trade_heavier_than_every_truck_stays_whole_in_a_part_of_its_own() -> None:
    huge, small, smaller = trade(1, 9 * T), trade(2, 2 * T), trade(3, T)
    parts = split(shipment_of(huge, small, smaller), 5 * T)
    assert sorted(p.trade_ids for p in parts) == [
        (huge.trade_id,),
        (small.trade_id, smaller.trade_id),
    ]


@pytest.mark.parametrize("room_g", [5 * T, 3 * T, 0, -1])
def test_a_shipment_that_fits_or_has_no_truck_at_all_stays_whole(room_g: int) -> None:
    shipment = shipment_of(trade(1, 2 * T), trade(2, T))
    [part] = split(shipment, room_g)
    assert part.part_id == shipment.shipment_id
    assert part.trades == shipment.trades
    assert part.weight_g == 3 * T


# What a planner is given


@pytest.fixture
def busy_yard() -> Yard:
    """Trucks in every state, and reefers set inside and outside the cold-chain range."""
    yard = Yard(bays=4)
    waiting = gate("甘A00001", 10 * T, dests=["上海"], minute=1)
    half = gate("甘B00002", 10 * T, minute=2)
    loading = gate("甘C00003", 10 * T, minute=3)
    loaded = gate("甘D00004", 10 * T, minute=4)
    gone = gate("甘E00005", 10 * T, minute=5)
    warm = gate("甘F00006", 8 * T, fridge=True, setpoint=50, minute=6)
    cold = gate("甘G00007", 8 * T, fridge=True, setpoint=80, minute=7)
    full = gate("甘H00008", 2 * T, minute=8)
    for visit in (waiting, half, loading, loaded, gone, warm, cold, full):
        yard.apply(visit)
    yard.apply(assign(half, trade(101, 4 * T, merchant="m-half")))
    for n, visit in enumerate((loading, loaded, gone), start=102):
        yard.apply(assign(visit, trade(n, T, merchant="m-gone")))
        yard.apply(move(visit, TruckStatus.LOADING, n - 101))
    for visit in (loaded, gone):
        yard.apply(move(visit, TruckStatus.LOADED))
    yard.apply(move(gone, TruckStatus.DEPARTED))
    yard.apply(assign(full, trade(105, 2 * T, merchant="m-full")))
    return yard


def test_a_planner_sees_the_trucks_open_to_loading_with_the_room_they_have_left(
    busy_yard: Yard,
) -> None:
    now = T0 + timedelta(hours=2)
    inputs = planner_inputs(busy_yard, now)
    # Loading, loaded, departed and full trucks are not offered; the others by the room left
    assert {t.plate: t.capacity_g for t in inputs.trucks} == {
        "甘A00001": 10 * T,
        "甘B00002": 6 * T,
        "甘F00006": 8 * T,
        "甘G00007": 8 * T,
    }
    # A reefer set outside 7-10 °C does not count as refrigerated
    assert {t.plate for t in inputs.trucks if t.refrigerated} == {"甘G00007"}
    by_plate = {t.plate: t for t in inputs.trucks}
    assert by_plate["甘A00001"].destinations == frozenset({"上海"})
    assert by_plate["甘A00001"].arrived_s == epoch_s(T0 + timedelta(minutes=1))
    assert set(inputs.visits) == set(by_plate)
    assert inputs.now_s == epoch_s(now)


def test_a_shipment_is_split_by_the_room_of_the_trucks_that_may_take_it(busy_yard: Yard) -> None:
    # Given 15 t of dry goods and 12 t of cold-chain goods for Shanghai
    dry = [trade(n, 3 * T, merchant="m-dry") for n in range(1, 6)]
    cold = [trade(n, 3 * T, merchant="m-cold", cold=True) for n in range(6, 10)]
    for t in (*dry, *cold):
        busy_yard.record_trade(t)
    inputs = planner_inputs(busy_yard, T0)
    parts_of = {
        kind: [p for p in inputs.parts.values() if p.shipment.merchant_id == kind]
        for kind in ("m-dry", "m-cold")
    }
    # Then the dry goods come in parts no heavier than the roomiest truck (10 t) ...
    assert sorted(trade_ids(parts_of["m-dry"])) == sorted(t.trade_id for t in dry)
    assert sorted(p.weight_g for p in parts_of["m-dry"]) == [6 * T, 9 * T]
    # ... and the cold goods in parts that fit the one truck cold enough for them (8 t)
    assert sorted(trade_ids(parts_of["m-cold"])) == sorted(t.trade_id for t in cold)
    assert [p.weight_g for p in parts_of["m-cold"]] == [6 * T, 6 * T]
    # And each part reaches the planner with its own weight and longest wait
    planned = {s.shipment_id: s for s in inputs.shipments}
    assert set(planned) == set(inputs.parts)
    for part_id, part in inputs.parts.items():
        assert planned[part_id].weight_g == part.weight_g
        assert planned[part_id].cold_chain is part.shipment.cold_chain
        assert planned[part_id].waiting_since_s == epoch_s(part.trades[0].traded_at)


def test_a_shipment_no_truck_may_take_is_offered_whole() -> None:
    yard = Yard(bays=2)
    yard.apply(gate("甘L00001", 5 * T, dests=["兰州"]))
    for n in range(1, 4):
        yard.record_trade(trade(n, 3 * T))
    inputs = planner_inputs(yard, T0)
    [part] = inputs.parts.values()
    assert (len(part.trades), part.weight_g) == (3, 9 * T)


# Naming a suggestion, and telling whether staff took it as it was


def inputs_and_plan(yard: Yard) -> tuple[loads.Plan, loads.Plan]:
    inputs = planner_inputs(yard, T0)
    ffd = loads.first_fit_decreasing(inputs.shipments, inputs.trucks, inputs.now_s)
    return ffd, loads.Plan.of(inputs.shipments, inputs.trucks, {}, inputs.now_s)


def small_yard() -> Yard:
    yard = Yard(bays=2)
    yard.apply(gate("甘A00001", 5 * T, minute=1))
    yard.apply(gate("甘B00002", 5 * T, minute=2))
    yard.record_trade(trade(1, 3 * T, merchant="m-1"))
    yard.record_trade(trade(2, 2 * T, merchant="m-2"))
    yard.record_trade(trade(3, 4 * T, merchant="m-3"))
    return yard


def test_the_same_plan_is_named_alike_and_a_different_plan_differently() -> None:
    # Given two instances whose yards hold the same trucks and trades
    one, two = small_yard(), small_yard()
    inputs_one, inputs_two = planner_inputs(one, T0), planner_inputs(two, T0)
    plan_one = loads.first_fit_decreasing(inputs_one.shipments, inputs_one.trucks)
    plan_two = loads.first_fit_decreasing(inputs_two.shipments, inputs_two.trucks)
    # Then the same plan has the same id in both
    assert suggestion_id(inputs_one, plan_one) == suggestion_id(inputs_two, plan_two)
    assert suggestion_id(inputs_one, plan_one).startswith("S")
    # And plans that put goods elsewhere, or leave some behind, have other ids
    swapped = {
        part: ("甘B00002" if plate == "甘A00001" else "甘A00001")
        for part, plate in plan_one.assignments.items()
    }
    fewer = dict(list(plan_one.assignments.items())[1:])
    others = [
        loads.Plan.of(inputs_one.shipments, inputs_one.trucks, assignments)
        for assignments in (swapped, fewer, {})
    ]
    names = {suggestion_id(inputs_one, p) for p in [plan_one, *others]}
    assert len(names) == 4


def test_a_load_is_the_same_whatever_the_order_of_its_trades() -> None:
    yard = small_yard()
    visit = yard.visit("甘A00001")
    shipments = yard.waiting()
    parts = tuple(Part(s.shipment_id, s, s.trades) for s in shipments[:2])
    weight = sum(p.weight_g for p in parts)
    load = TruckLoad(visit, parts, weight, capacity_g=10 * T, loaded_before_g=T)
    planned = trade_ids(parts)
    assert same_load(load, planned)
    assert same_load(load, list(reversed(planned)))
    assert not same_load(load, planned[:1])
    assert not same_load(load, [*planned, "ganmibao.extra:3"])
    assert not same_load(None, planned)
    assert load.fill_ratio_after == pytest.approx((T + weight) / (10 * T))


# The optimiser on random yards, and accepting what it suggests


DESTINATIONS = ["上海", "杭州", "广州"]


def sold(
    n: int, weight_g: int, *, merchant: str, dest: str, cold: bool, minute: int
) -> TradeExecuted:
    return TradeExecuted(
        correlation_id=f"lot-{n}",
        occurred_at=T0 + timedelta(minutes=minute),
        trade_id=f"ganmibao.extra:{n}",
        book="ganmibao.extra",
        sequence=n,
        lot_id=f"lot-{n}",
        farmer_id=f"farmer-{n % 5}",
        bid_id=f"bid-{n}",
        merchant_id=merchant,
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=max(1, weight_g // 20_000),
        weight_g=weight_g,
        price_fen_per_kg=680,
        amount_fen=weight_g * 680 // 1000,
        destination=dest,
        cold_chain=cold,
    )


def random_yard(service: DispatchService, rng: random.Random) -> None:
    """Trucks of every kind, some already loaded by hand, and more goods than room."""
    plates = [f"甘H1000{k}" for k in range(rng.randrange(3, 6))]
    for plate in plates:
        fridge = rng.random() < 0.5
        service.check_in(
            CheckInRequest(
                plate=plate,
                driver="王师傅",
                phone="",
                capacity_kg=Decimal(rng.randrange(3, 16) * 1000),
                refrigerated=fridge,
                setpoint_c=Decimal(rng.choice(["5.0", "8.0", "9.5", "12.0"])) if fridge else None,
                destinations=tuple(rng.sample(DESTINATIONS, rng.randrange(0, 3))),
                by="gate-1",
            )
        )
    count = rng.randrange(8, 20)
    for n in range(1, count + 1):
        service.record_trade(
            sold(
                n,
                rng.randrange(200, 6000) * 1000,
                merchant=rng.choice(["m-1", "m-2", "m-3", "m-4"]),
                dest=rng.choice(DESTINATIONS),
                cold=rng.random() < 0.3,
                minute=rng.randrange(0, 240),
            )
        )
    # One merchant's goods for a city are more than any truck takes, so they come in parts
    for n in range(count + 1, count + 6):
        service.record_trade(
            sold(n, 4_000_000, merchant="m-big", dest="上海", cold=False, minute=n)
        )
    for plate in plates[:2]:
        waiting = service.read(lambda yard: [t.trade_id for s in yard.waiting() for t in s.trades])
        # A random pick may break a rule (cold chain, destination); the yard then stays as it is
        with contextlib.suppress(DispatchError):
            service.assign(AssignRequest(plate, (), (rng.choice(waiting),), "clerk-1"))
    with contextlib.suppress(DispatchError):
        service.move(plates[0], TruckStatus.LOADING, "yard-1", 1)


def assert_consistent(yard: Yard) -> None:
    held = Counter(line.trade_id for a in yard.assignments() for line in a.lines)
    assert [t for t, n in held.items() if n > 1] == []
    for visit in yard.visits(include_departed=True):
        assert visit.loaded_g <= visit.checked_in.capacity_g
        for a in visit.assignments.values():
            assert visit.serves(a.destination)
            assert visit.cold_chain_ready or not a.cold_chain


@pytest.mark.parametrize("seed", range(6))
def test_the_optimiser_suggests_feasible_loads_that_staff_can_accept_whole(seed: int) -> None:
    rng = random.Random(seed)
    service, _ = build_in_memory(bays=3, planner=cp_sat(0.5, 1), solver="cp-sat")
    random_yard(service, rng)
    # When the optimiser suggests loads for the yard
    suggestion = service.suggestion()
    inputs = suggestion.inputs
    # (whole shipments in parts that fit, or trade by trade when that loads more)
    assert any("#" in part_id or "/" in part_id for part_id in inputs.parts)
    # Then its plan keeps every rule and loads no less than first-fit-decreasing would
    suggestion.plan.check(inputs.shipments, inputs.trucks)
    assert suggestion.greedy.loaded_g > 0
    assert suggestion.plan.loaded_g >= suggestion.greedy.loaded_g
    if not suggestion.split_by_trade:
        # On the same items, it is no worse on wait either
        assert loads.score(suggestion.plan, inputs.shipments) >= loads.score(
            suggestion.greedy, inputs.shipments
        )
    # And it only loads trucks still open to loading
    for load in suggestion.loads:
        assert load.visit.status in (TruckStatus.WAITING, TruckStatus.ASSIGNED)
    # When staff accept the whole suggestion
    outcome = service.accept(suggestion.suggestion_id, "clerk-9")
    # Then every truck's load stands, as suggested, and the rest still waits
    assert outcome.refused == []
    suggested = sorted(t for load in suggestion.loads for t in trade_ids(load.parts))
    assigned = sorted(line.trade_id for a in outcome.assigned for line in a.lines)
    assert assigned == suggested
    assert {a.decision for a in outcome.assigned} == {Decision.SUGGESTED}
    assert {a.suggestion_id for a in outcome.assigned} == {suggestion.suggestion_id}
    still_waiting = service.read(
        lambda y: sorted(t.trade_id for s in y.waiting() for t in s.trades)
    )
    assert still_waiting == sorted(trade_ids(suggestion.left_behind))
    # And the yard is consistent: no truck over capacity, no trade twice, every rule kept
    service.read(assert_consistent)


def test_a_suggestion_is_solved_again_only_when_the_yard_changed() -> None:
    service, _ = build_in_memory(bays=3)
    random_yard(service, random.Random(3))
    first = service.suggestion()
    assert service.suggestion() is first
    service.record_trade(sold(999, T, merchant="m-9", dest="上海", cold=False, minute=1))
    second = service.suggestion()
    assert second is not first
    assert second.yard_version > first.yard_version
    assert service.latest_suggestion() is second
    assert second.solver == GREEDY
