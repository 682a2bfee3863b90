"""Suggested loads: the loading rules, the greedy plan, and the CP-SAT plan that must beat it."""

from __future__ import annotations

import dataclasses
import random

import pytest

from dispatch.adapters import optimiser
from dispatch.adapters.optimiser import optimise
from dispatch.domain.loads import (
    DuplicateId,
    InfeasiblePlan,
    Plan,
    Score,
    Shipment,
    Truck,
    TruckPlan,
    allowed,
    first_fit_decreasing,
    score,
)

T = 1_000_000  # one tonne in grams
ANY: frozenset[str] = frozenset()


def ship(
    shipment_id: str,
    weight_g: int,
    *,
    cold: bool = False,
    dest: str = "Lanzhou",
    since: int = 0,
) -> Shipment:
    return Shipment(shipment_id, weight_g, cold, dest, since)


def truck(
    plate: str,
    capacity_g: int,
    *,
    fridge: bool = False,
    dests: frozenset[str] = ANY,
    arrived: int = 0,
) -> Truck:
    return Truck(plate, capacity_g, fridge, dests, arrived)


@pytest.mark.parametrize(
    ("shipment", "candidate", "expected"),
    [
        (ship("s", 5 * T), truck("A", 5 * T), True),
        (ship("s", 5 * T + 1), truck("A", 5 * T), False),
        (ship("s", T, cold=True), truck("A", 5 * T), False),
        (ship("s", T, cold=True), truck("A", 5 * T, fridge=True), True),
        (ship("s", T), truck("A", 5 * T, fridge=True), True),
        (ship("s", T, dest="Xi'an"), truck("A", 5 * T, dests=frozenset({"Lanzhou"})), False),
        (ship("s", T, dest="Xi'an"), truck("A", 5 * T, dests=frozenset({"Xi'an", "Hami"})), True),
        (ship("s", T, dest="Xi'an"), truck("A", 5 * T), True),
    ],
    ids=[
        "fits",
        "heavier-than-truck",
        "cold-on-plain",
        "cold-on-fridge",
        "plain-on-fridge",
        "destination-not-served",
        "destination-served",
        "serves-anywhere",
    ],
)
def test_allowed(shipment: Shipment, candidate: Truck, expected: bool) -> None:
    assert allowed(shipment, candidate) is expected


SHIPMENTS = [
    ship("s1", 3 * T, since=100),
    ship("s2", 2 * T, cold=True, since=200),
    ship("s3", 2 * T, dest="Hami", since=300),
]
TRUCKS = [
    truck("PLAIN", 4 * T, arrived=10),
    truck("FRIDGE", 4 * T, fridge=True, dests=frozenset({"Lanzhou"}), arrived=20),
]


def _two_trucks(plan: Plan) -> Plan:
    trucks = tuple(dataclasses.replace(t, shipment_ids=("s1",), load_g=3 * T) for t in plan.trucks)
    return dataclasses.replace(plan, trucks=trucks)


@pytest.mark.parametrize(
    ("assignments", "tamper", "message"),
    [
        ({"s1": "PLAIN", "s3": "PLAIN"}, None, "over its capacity"),
        ({"s2": "PLAIN"}, None, "needs cold chain"),
        ({"s3": "FRIDGE"}, None, "does not go to Hami"),
        ({"ghost": "PLAIN"}, None, "unknown shipment ghost"),
        ({"s1": "NOPE"}, None, "unknown truck NOPE"),
        ({"s1": "PLAIN"}, _two_trucks, "is on trucks PLAIN and FRIDGE"),
        ({"s1": "PLAIN"}, lambda p: dataclasses.replace(p, unassigned=("s2",)), "every shipment"),
        ({"s1": "PLAIN"}, lambda p: dataclasses.replace(p, unassigned=("s2", "s3", "s1")), "both"),
        ({"s1": "PLAIN"}, lambda p: dataclasses.replace(p, loaded_g=4 * T), "totals"),
        ({"s1": "PLAIN"}, lambda p: dataclasses.replace(p, trucks=p.trucks[:1]), "every truck"),
        (
            {"s1": "PLAIN"},
            lambda p: dataclasses.replace(p, trucks=(*p.trucks, TruckPlan("X", T, (), 0))),
            "unknown truck X",
        ),
        (
            {"s1": "PLAIN"},
            lambda p: dataclasses.replace(p, assignments={"s1": "FRIDGE"}),
            "not assigned to it",
        ),
    ],
    ids=[
        "capacity",
        "cold-chain",
        "destination",
        "unknown-shipment",
        "unknown-truck",
        "two-trucks",
        "shipment-lost",
        "loaded-and-left",
        "wrong-total",
        "truck-missing",
        "extra-truck",
        "assignment-disagrees",
    ],
)
def test_check_refuses(assignments: dict[str, str], tamper: object, message: str) -> None:
    plan = Plan.of(SHIPMENTS, TRUCKS, assignments)
    if callable(tamper):
        plan = tamper(plan)
    with pytest.raises(InfeasiblePlan, match=message):
        plan.check(SHIPMENTS, TRUCKS)


def test_check_accepts_a_valid_plan_and_figures_add_up() -> None:
    plan = Plan.of(SHIPMENTS, TRUCKS, {"s1": "PLAIN", "s2": "FRIDGE"}, now_s=400)
    plan.check(SHIPMENTS, TRUCKS)
    assert plan.unassigned == ("s3",)
    assert (plan.load_g("PLAIN"), plan.load_g("FRIDGE")) == (3 * T, 2 * T)
    assert (plan.fill_ratio("PLAIN"), plan.fill_ratio("FRIDGE")) == (0.75, 0.5)
    assert plan.mean_fill_ratio == pytest.approx(0.625)
    assert (plan.loaded_g, plan.loaded_wait_s, plan.unassigned_wait_s) == (5 * T, 500, 100)
    assert score(plan, SHIPMENTS) == Score(5 * T, 500)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(DuplicateId):
        first_fit_decreasing([ship("s1", T), ship("s1", T)], TRUCKS)
    with pytest.raises(DuplicateId):
        first_fit_decreasing(SHIPMENTS, [truck("A", T), truck("A", 2 * T)])


@pytest.mark.parametrize(
    ("shipments", "trucks", "expected", "left"),
    [
        (
            [ship("a", 2 * T), ship("b", 6 * T), ship("c", 3 * T)],
            [truck("LATE", 10 * T, arrived=5), truck("EARLY", 8 * T, arrived=1)],
            {"b": "EARLY", "c": "LATE", "a": "EARLY"},
            (),
        ),
        (
            [ship("a", 5 * T), ship("b", 4 * T), ship("c", 4 * T)],
            [truck("A", 8 * T)],
            {"a": "A"},
            ("b", "c"),
        ),
        (
            [ship("cold", 3 * T, cold=True), ship("plain", 4 * T)],
            [truck("P", 10 * T, arrived=1), truck("F", 10 * T, fridge=True, arrived=2)],
            {"plain": "P", "cold": "F"},
            (),
        ),
        (
            [ship("h", 2 * T, dest="Hami"), ship("l", 2 * T)],
            [truck("H", 10 * T, dests=frozenset({"Hami"})), truck("L", 10 * T, arrived=1)],
            {"h": "H", "l": "L"},
            (),
        ),
        (
            [ship("new", 3 * T, since=50), ship("old", 3 * T, since=10)],
            [truck("A", 4 * T)],
            {"old": "A"},
            ("new",),
        ),
        ([ship("a", T)], [], {}, ("a",)),
        ([], [truck("A", T)], {}, ()),
    ],
    ids=[
        "heaviest-first-yard-order",
        "leaves-what-does-not-fit",
        "cold-to-fridge",
        "destination",
        "equal-weight-longest-waiting",
        "no-trucks",
        "no-shipments",
    ],
)
def test_first_fit_decreasing(
    shipments: list[Shipment],
    trucks: list[Truck],
    expected: dict[str, str],
    left: tuple[str, ...],
) -> None:
    plan = first_fit_decreasing(shipments, trucks)
    plan.check(shipments, trucks)
    assert dict(plan.assignments) == expected
    assert plan.unassigned == left


@pytest.mark.parametrize(
    ("shipments", "trucks", "ffd_g", "best"),
    [
        (
            # Classic bin-packing counterexample: FFD fills 5+4 and 4+3+2, stranding a 2.
            [ship(f"s{i}", w * T) for i, w in enumerate([5, 4, 4, 3, 2, 2])],
            [truck("A", 10 * T), truck("B", 10 * T)],
            18 * T,
            Score(20 * T, 0),
        ),
        (
            # The refrigerated truck comes first in the yard, so FFD fills it with plain goods.
            [ship("plain", 8 * T), ship("cold", 6 * T, cold=True)],
            [truck("F", 10 * T, fridge=True), truck("P", 10 * T)],
            8 * T,
            Score(14 * T, 0),
        ),
        (
            # Same weight either way, but the optimiser loads the shipments waiting longest.
            [
                ship("new6", 6 * T, since=100),
                ship("new4", 4 * T, since=100),
                ship("old5a", 5 * T, since=0),
                ship("old5b", 5 * T, since=0),
            ],
            [truck("A", 10 * T, arrived=100)],
            10 * T,
            Score(10 * T, 200),
        ),
    ],
    ids=["bin-packing", "cold-chain-blocked", "longest-waiting"],
)
def test_optimiser_beats_ffd(
    shipments: list[Shipment], trucks: list[Truck], ffd_g: int, best: Score
) -> None:
    greedy = first_fit_decreasing(shipments, trucks)
    plan = optimise(shipments, trucks, time_limit_s=2.0)
    plan.check(shipments, trucks)
    assert greedy.loaded_g == ffd_g
    assert score(plan, shipments) == best
    assert score(plan, shipments) > score(greedy, shipments)


def random_instance(seed: int) -> tuple[list[Shipment], list[Truck]]:
    rng = random.Random(seed)
    places = ["Lanzhou", "Xi'an", "Hami", "Urumqi"]
    shipments = [
        ship(
            f"s{i}",
            rng.randint(200_000, 8 * T),
            cold=rng.random() < 1 / 3,
            dest=rng.choice(places),
            since=rng.randint(0, 36_000),
        )
        for i in range(rng.randint(5, 15))
    ]
    trucks = [
        truck(
            f"T{i}",
            rng.randint(5 * T, 20 * T),
            fridge=rng.random() < 0.4,
            dests=frozenset(rng.sample(places, rng.randint(0, 2))),
            arrived=rng.randint(0, 36_000),
        )
        for i in range(rng.randint(2, 5))
    ]
    return shipments, trucks


@pytest.mark.parametrize("seed", range(50))
def test_random_instances_are_feasible_and_never_worse_than_ffd(seed: int) -> None:
    shipments, trucks = random_instance(seed)
    greedy = first_fit_decreasing(shipments, trucks)
    plan = optimise(shipments, trucks, time_limit_s=1.0)
    greedy.check(shipments, trucks)
    plan.check(shipments, trucks)
    assert score(plan, shipments) >= score(greedy, shipments)


def test_optimiser_is_deterministic() -> None:
    shipments, trucks = random_instance(7)
    assert optimise(shipments, trucks) == optimise(shipments, trucks)


def test_optimiser_falls_back_to_ffd_without_a_solution(monkeypatch: pytest.MonkeyPatch) -> None:
    shipments = [ship(f"s{i}", w * T) for i, w in enumerate([5, 4, 4, 3, 2, 2])]
    trucks = [truck("A", 10 * T), truck("B", 10 * T, arrived=1)]
    monkeypatch.setattr(optimiser._Model, "solve", lambda self, time_limit_s, workers=1: None)
    assert optimise(shipments, trucks) == first_fit_decreasing(shipments, trucks)


def test_optimiser_with_nothing_to_load() -> None:
    shipments = [ship("cold", T, cold=True)]
    trucks = [truck("P", 10 * T)]
    plan = optimise(shipments, trucks)
    plan.check(shipments, trucks)
    assert plan.unassigned == ("cold",)
    assert plan.mean_fill_ratio == 0.0


def test_interleaved_workers_find_the_same_optimum() -> None:
    shipments = [ship(f"s{i}", w * T) for i, w in enumerate([5, 4, 4, 3, 2, 2])]
    trucks = [truck("A", 10 * T), truck("B", 10 * T)]
    plan = optimise(shipments, trucks, workers=4)
    plan.check(shipments, trucks)
    assert plan.loaded_g == 20 * T
    assert plan == optimise(shipments, trucks, workers=4)
