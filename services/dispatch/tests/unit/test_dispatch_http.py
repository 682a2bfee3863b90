"""The dispatch HTTP API on the in-memory log: routes, refusals, and decisions that race."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from dispatch.bootstrap import GREEDY, build_in_memory, greedy
from dispatch.domain.yard import shipment_id_for
from dispatch.entrypoints.http import create_app
from dispatch.entrypoints.projection import RejectedRecord, make_handler
from dispatch.service import DispatchService
from melon_contracts.envelope import Message
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
from melon_contracts.topics import DISPATCH_YARD, TRADES, TopicSpec
from melon_contracts.transport import InMemoryPublisher

T = 1_000_000
"""One tonne in grams."""

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)


def sold(
    n: int,
    weight_g: int = T,
    *,
    merchant: str | None = None,
    dest: str = "上海",
    cold: bool = False,
) -> TradeExecuted:
    """Trade ``n``; each trade is a shipment of its own unless merchants are named alike."""
    return TradeExecuted(
        correlation_id=f"lot-{n}",
        occurred_at=T0 + timedelta(minutes=n),
        trade_id=tid(n),
        book="ganmibao.extra",
        sequence=n,
        lot_id=f"lot-{n}",
        farmer_id=f"farmer-{n % 4}",
        bid_id=f"bid-{n}",
        merchant_id=merchant or f"m-{n}",
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=max(1, weight_g // 20_000),
        weight_g=weight_g,
        price_fen_per_kg=680,
        amount_fen=weight_g * 680 // 1000,
        destination=dest,
        cold_chain=cold,
    )


def tid(n: int) -> str:
    return f"ganmibao.extra:{n}"


def sid(event: TradeExecuted) -> str:
    return shipment_id_for(event.merchant_id, event.destination, event.cold_chain)


def truck_body(plate: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "plate": plate,
        "driver": "王师傅",
        "phone": "13900000000",
        "capacity_kg": "10000",
        "refrigerated": False,
        "checked_in_by": "gate-1",
    }
    return body | changes


def assign_body(plate: str, *trades: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "plate": plate,
        "trade_ids": [tid(n) for n in trades],
        "assigned_by": "clerk-1",
    }
    return body | changes


class Hall:
    """A running dispatch service with its client, its log, and a way to feed it trades."""

    def __init__(self, service: DispatchService, recorder: InMemoryPublisher) -> None:
        self.service = service
        self.recorder = recorder
        self.handle = make_handler(service)
        self.client = TestClient(create_app(service))

    def sell(self, *trades: TradeExecuted) -> None:
        for trade in trades:
            self.handle(TRADES, trade.book, trade)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response: httpx.Response = self.client.post(path, json=body)
        return response

    def ok(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = self.post(path, body)
        assert response.status_code == status, response.text
        return response.json()

    def truck(self, plate: str, **changes: Any) -> Any:
        return self.ok("/trucks", truck_body(plate, **changes), 201)

    def assign(self, plate: str, *trades: int, **changes: Any) -> Any:
        return self.ok("/assignments", assign_body(plate, *trades, **changes), 201)

    def bay(self, plate: str, bay: int) -> Any:
        return self.ok(f"/trucks/{plate}/bay", {"bay": bay, "by": "yard-1"})

    def loaded(self, plate: str) -> Any:
        return self.ok(f"/trucks/{plate}/loaded", {"by": "yard-1"})

    def depart(self, plate: str) -> Any:
        return self.ok(f"/trucks/{plate}/departure", {"by": "gate-2"})

    def log(self) -> list[Message]:
        return self.recorder.on(DISPATCH_YARD)


@pytest.fixture
def hall() -> Iterator[Hall]:
    service, recorder = build_in_memory()
    running = Hall(service, recorder)
    with running.client:
        yield running


# Successful requests and what they answer


def test_a_checked_in_truck_is_published_keyed_by_plate_and_joins_the_queue(hall: Hall) -> None:
    # When the gate checks in a reefer, typing the plate in lower case
    truck = hall.truck(
        "甘h12345",
        capacity_kg="12.5",
        refrigerated=True,
        setpoint_c="7.5",
        destinations=["上海", " 杭州 ", "上海"],
    )
    # Then it waits in the yard with its capacity in grams and kg, and its set-point
    assert truck["plate"] == "甘H12345"
    assert (truck["capacity_g"], truck["capacity_kg"]) == (12_500, "12.5")
    assert (truck["loaded_g"], truck["remaining_kg"], truck["fill_ratio"]) == (0, "12.5", 0.0)
    assert (truck["setpoint_c"], truck["cold_chain_ready"]) == ("7.5", True)
    assert truck["destinations"] == ["上海", "杭州"]
    assert (truck["status"], truck["bay"], truck["assignment_ids"]) == ("waiting", None, [])
    assert [(s["status"], s["by"]) for s in truck["history"]] == [("waiting", "gate-1")]
    assert truck["departed_at"] is None
    # And the yard's log holds one TruckCheckedIn, keyed by plate, whose id names the visit
    [(topic, key, event)] = hall.recorder.sent
    assert (topic, key) == (DISPATCH_YARD.name, "甘H12345")
    assert isinstance(event, TruckCheckedIn)
    assert (event.capacity_g, event.setpoint_tenths_c) == (12_500, 75)
    assert str(event.event_id) == truck["visit_id"]
    # And staff find it in the list and by its plate, however typed
    assert hall.client.get("/trucks").json() == [truck]
    assert hall.client.get("/trucks/甘h12345").json() == truck


def test_a_truck_without_a_refrigeration_unit_has_no_set_point(hall: Hall) -> None:
    truck = hall.truck("甘H00001", refrigerated=False, setpoint_c="8.0")
    assert (truck["setpoint_c"], truck["cold_chain_ready"]) == (None, False)


def test_sold_goods_wait_as_shipments_per_merchant_destination_and_cold_chain(hall: Hall) -> None:
    # Given trades delivered as the reader delivers them, one of them twice
    a, b = sold(1, 1_234_567, merchant="m-1"), sold(2, merchant="m-1")
    cold = sold(3, merchant="m-1", cold=True)
    hall.sell(a, a, b, cold)
    # When staff list what waits
    shipments = hall.client.get("/shipments").json()
    # Then m-1's two dry trades are one shipment and the cold-chain one another, oldest first
    assert [(s["shipment_id"], s["weight_kg"], s["cold_chain"]) for s in shipments] == [
        (sid(a), "2234.567", False),
        (sid(cold), "1000", True),
    ]
    assert [(line["trade_id"], line["lot_id"]) for line in shipments[0]["lines"]] == [
        (tid(1), "lot-1"),
        (tid(2), "lot-2"),
    ]
    assert shipments[0]["waiting_since"] == a.occurred_at.isoformat().replace("+00:00", "Z")
    assert shipments[0]["crates"] == a.crates + b.crates


def test_an_assignment_puts_shipments_on_a_truck_one_event_per_shipment(hall: Hall) -> None:
    # Given a truck and three shipments, the first of two trades
    hall.truck("甘H00001", capacity_kg="10000")
    trades = [sold(1, 2 * T, merchant="m-1"), sold(2, T, merchant="m-1"), sold(3), sold(4)]
    hall.sell(*trades)
    hall.recorder.sent.clear()
    # When staff put m-1's shipment and trade 3 on the truck
    made = hall.assign("甘H00001", 3, shipment_ids=[sid(trades[0])])
    # Then there is one assignment per shipment, standing, made by hand
    assert [(a["shipment_id"], a["weight_kg"], a["decision"], a["standing"]) for a in made] == [
        (sid(trades[0]), "3000", "manual", True),
        (sid(trades[2]), "1000", "manual", True),
    ]
    assert [line["lot_id"] for line in made[0]["lines"]] == ["lot-1", "lot-2"]
    assert (made[0]["plate"], made[0]["assigned_by"], made[0]["suggestion_id"]) == (
        "甘H00001",
        "clerk-1",
        None,
    )
    # And the truck carries 4 t of 10, and only trade 4 still waits
    truck = hall.client.get("/trucks/甘H00001").json()
    assert (truck["status"], truck["loaded_kg"], truck["remaining_kg"]) == (
        "assigned",
        "4000",
        "6000",
    )
    assert truck["assignment_ids"] == [a["assignment_id"] for a in made]
    assert [s["shipment_id"] for s in hall.client.get("/shipments").json()] == [sid(trades[3])]
    # And the log carries each shipment's trades as lines that trace every melon to its farm
    events = hall.log()
    assert all(isinstance(e, ShipmentAssigned) for e in events)
    assert [str(e.event_id) for e in events] == [a["assignment_id"] for a in made]
    by_trade = {t.trade_id: t for t in trades}
    for event in events:
        assert isinstance(event, ShipmentAssigned)
        assert event.weight_g == sum(line.weight_g for line in event.lines)
        for line in event.lines:
            source = by_trade[line.trade_id]
            assert (line.lot_id, line.farmer_id, line.weight_g, line.crates) == (
                source.lot_id,
                source.farmer_id,
                source.weight_g,
                source.crates,
            )
    assert {key for _, key, _ in hall.recorder.sent} == {"甘H00001"}


def test_goods_sold_without_a_destination_go_on_a_truck_that_goes_anywhere(hall: Hall) -> None:
    # A merchant's bid need not name a destination, so neither does its trade
    hall.truck("甘H00001")
    hall.sell(sold(1, dest=""))
    [made] = hall.assign("甘H00001", 1)
    assert (made["destination"], made["standing"]) == ("", True)
    assert hall.client.get("/shipments").json() == []


def test_assignments_are_listed_by_truck_and_with_those_taken_back(hall: Hall) -> None:
    hall.truck("甘H00001")
    hall.truck("甘H00002")
    hall.sell(sold(1), sold(2), sold(3))
    [first] = hall.assign("甘H00001", 1)
    [second] = hall.assign("甘H00002", 2)
    [third] = hall.assign("甘H00001", 3)
    hall.ok(f"/assignments/{third['assignment_id']}/take-back", {"by": "clerk-2"})
    ids = [a["assignment_id"] for a in hall.client.get("/assignments").json()]
    assert ids == [first["assignment_id"], second["assignment_id"]]
    by_plate = hall.client.get("/assignments", params={"plate": "甘h00001"}).json()
    assert [a["assignment_id"] for a in by_plate] == [first["assignment_id"]]
    everything = hall.client.get("/assignments", params={"all": True}).json()
    assert [(a["assignment_id"], a["standing"]) for a in everything] == [
        (first["assignment_id"], True),
        (second["assignment_id"], True),
        (third["assignment_id"], False),
    ]


def test_taking_goods_back_lets_them_wait_again(hall: Hall) -> None:
    hall.truck("甘H00001")
    hall.sell(sold(1, 3 * T))
    [made] = hall.assign("甘H00001", 1)
    # When staff take the shipment back off the truck
    taken = hall.ok(
        f"/assignments/{made['assignment_id']}/take-back", {"by": "clerk-2", "reason": "错车"}
    )
    # Then the assignment no longer stands, the truck waits empty and the goods wait again
    assert (taken["assignment_id"], taken["standing"]) == (made["assignment_id"], False)
    truck = hall.client.get("/trucks/甘H00001").json()
    assert (truck["status"], truck["loaded_g"], truck["assignment_ids"]) == ("waiting", 0, [])
    assert [s["weight_kg"] for s in hall.client.get("/shipments").json()] == ["3000"]
    event = hall.log()[-1]
    assert isinstance(event, ShipmentUnassigned)
    assert (str(event.assignment_id), event.reason, event.unassigned_by) == (
        made["assignment_id"],
        "错车",
        "clerk-2",
    )


def test_a_truck_goes_to_a_bay_is_loaded_and_departs(hall: Hall) -> None:
    hall.truck("甘H00001", capacity_kg="5000")
    hall.sell(sold(1, 4 * T))
    hall.assign("甘H00001", 1)
    at_bay = hall.bay("甘h00001", 2)
    assert (at_bay["status"], at_bay["bay"]) == ("loading", 2)
    loaded = hall.loaded("甘H00001")
    assert (loaded["status"], loaded["bay"], loaded["fill_ratio"]) == ("loaded", 2, 0.8)
    gone = hall.depart("甘H00001")
    assert gone["status"] == "departed"
    assert gone["departed_at"] is not None
    assert [(s["status"], s["by"], s["bay"]) for s in gone["history"]] == [
        ("waiting", "gate-1", None),
        ("assigned", "clerk-1", None),
        ("loading", "yard-1", 2),
        ("loaded", "yard-1", None),
        ("departed", "gate-2", None),
    ]
    statuses = [e.status for e in hall.log() if isinstance(e, TruckStatusChanged)]
    assert statuses == ["loading", "loaded", "departed"]
    # A departed truck leaves the list, but stays on record by its plate
    assert hall.client.get("/trucks").json() == []
    assert [t["plate"] for t in hall.client.get("/trucks?departed=true").json()] == ["甘H00001"]
    assert hall.client.get("/trucks/甘H00001").json()["status"] == "departed"
    # And the plate may come back as a new visit
    again = hall.truck("甘H00001")
    assert (again["status"], again["visit_id"] != gone["visit_id"]) == ("waiting", True)


def test_the_health_check_says_ok_once_the_yard_is_current(hall: Hall) -> None:
    response = hall.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_health_check_says_degraded_while_the_broker_does_not_answer(hall: Hall) -> None:
    # Given a broker that stops answering
    answers = {"now": True}

    def probe() -> None:
        if not answers["now"]:
            raise ConnectionError("connection refused")

    watch = BrokerWatch("127.0.0.1:1", probe=probe)
    hall.service.broker = watch
    watch.look()
    assert hall.client.get("/healthz").status_code == 200
    answers["now"] = False
    watch.look()
    # Then the health check and the gauges say why, until it answers again
    response = hall.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert "connection refused" in response.json()["degraded"]["broker_unreachable"]
    assert REGISTRY.get_sample_value("melon_broker_reachable") == 0
    assert REGISTRY.get_sample_value("melon_health_degraded", {"reason": "broker_unreachable"}) == 1
    answers["now"] = True
    watch.look()
    assert hall.client.get("/healthz").status_code == 200
    assert REGISTRY.get_sample_value("melon_broker_reachable") == 1


# Refusals: status, code, both languages, and nothing published


def furnish(hall: Hall) -> Hall:
    """Trucks in every state and goods of every kind, to break each rule against."""
    hall.truck("甘D00001", capacity_kg="3000")
    hall.truck("甘C00002", refrigerated=True, setpoint_c="8.0")
    hall.truck("甘C00003", refrigerated=True, setpoint_c="4.0")
    hall.truck("甘L00004", destinations=["兰州"])
    for plate in ("甘B00005", "甘B00006", "甘X00007"):
        hall.truck(plate, capacity_kg="5000")
    hall.sell(sold(1), sold(2, cold=True), sold(3, 4 * T), *(sold(n) for n in range(4, 8)))
    hall.sell(sold(8, 2_500_000))
    hall.assign("甘C00002", 4)
    for n, plate in enumerate(("甘B00005", "甘B00006", "甘X00007"), start=5):
        hall.assign(plate, n)
        hall.bay(plate, n - 4)
    hall.loaded("甘B00006")
    hall.loaded("甘X00007")
    hall.depart("甘X00007")
    return hall


@pytest.fixture(scope="module")
def rules() -> Iterator[Hall]:
    """One furnished yard for the refusals: each asserts it changed nothing, so they share it."""
    service, recorder = build_in_memory()
    running = Hall(service, recorder)
    with running.client:
        yield furnish(running)


@pytest.fixture
def furnished(hall: Hall) -> Hall:
    return furnish(hall)


def assignment_of(hall: Hall, plate: str) -> str:
    [made] = hall.client.get("/assignments", params={"plate": plate}).json()
    assignment_id: str = made["assignment_id"]
    return assignment_id


REFUSALS = [
    ("/assignments", assign_body("甘Z99999", 1), 404, "unknown_truck"),
    ("/trucks/甘Z99999/bay", {"bay": 4, "by": "yard-1"}, 404, "unknown_truck"),
    ("/trucks/甘Z99999/departure", {"by": "gate-2"}, 404, "unknown_truck"),
    ("/assignments", assign_body("甘D00001", 1, 999), 404, "unknown_trade"),
    ("/assignments", assign_body("甘D00001", shipment_ids=["m-9-x-A"]), 404, "unknown_shipment"),
    ("/assignments/no-such/take-back", {"by": "clerk-1"}, 404, "unknown_assignment"),
    ("/assignments", assign_body("甘D00001", 3), 409, "over_capacity"),
    ("/assignments", assign_body("甘D00001", 1, 8), 409, "over_capacity"),
    ("/assignments", assign_body("甘D00001", 2), 409, "cold_chain_required"),
    ("/assignments", assign_body("甘C00003", 2), 409, "setpoint_out_of_range"),
    ("/assignments", assign_body("甘L00004", 1), 409, "destination_not_served"),
    ("/assignments", assign_body("甘D00001", 4), 409, "shipment_already_assigned"),
    ("/assignments", assign_body("甘D00001", 1, 4), 409, "shipment_already_assigned"),
    ("/assignments", assign_body("甘X00007", 1), 409, "truck_departed"),
    ("/trucks/甘X00007/bay", {"bay": 4, "by": "yard-1"}, 409, "truck_departed"),
    ("/assignments", assign_body("甘B00006", 1), 409, "truck_loaded"),
    ("/assignments/{甘B00006}/take-back", {"by": "clerk-1"}, 409, "truck_loaded"),
    ("/assignments/{甘X00007}/take-back", {"by": "clerk-1"}, 409, "truck_departed"),
    ("/trucks/甘C00002/departure", {"by": "gate-2"}, 409, "invalid_transition"),
    ("/trucks/甘D00001/loaded", {"by": "yard-1"}, 409, "invalid_transition"),
    ("/trucks/甘B00006/bay", {"bay": 4, "by": "yard-1"}, 409, "invalid_transition"),
    ("/trucks/甘D00001/bay", {"bay": 4, "by": "yard-1"}, 409, "nothing_to_load"),
    ("/trucks/甘C00002/bay", {"bay": 1, "by": "yard-1"}, 409, "bay_occupied"),
    ("/suggestions/Sdeadbeef000/accept", {"accepted_by": "clerk-1"}, 409, "suggestion_stale"),
    (
        "/assignments",
        assign_body("甘D00001", 1, suggestion_id="Sdeadbeef000"),
        409,
        "suggestion_stale",
    ),
    ("/trucks", truck_body("甘d00001"), 409, "truck_already_in_yard"),
    ("/trucks/甘C00002/bay", {"bay": 7, "by": "yard-1"}, 422, "unknown_bay"),
    ("/assignments", assign_body("甘D00001"), 422, "empty_assignment"),
    ("/trucks", truck_body("甘N00009", refrigerated=True), 422, "setpoint_required"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    REFUSALS,
    ids=[f"{code}:{path}" for path, _, _, code in REFUSALS],
)
def test_a_request_that_breaks_a_rule_is_refused_with_the_reason_and_publishes_nothing(
    rules: Hall, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    for plate in ("甘B00006", "甘X00007"):
        path = path.replace(f"{{{plate}}}", assignment_of(rules, plate))
    sent, version = len(rules.recorder.sent), rules.service.version
    response = rules.post(path, body)
    assert response.status_code == status, response.text
    refusal = response.json()
    assert refusal["error"] == code
    assert refusal["detail"]
    assert refusal["detail_zh"]
    assert (len(rules.recorder.sent), rules.service.version) == (sent, version)


def test_the_refusals_name_what_stands_in_the_way(rules: Hall) -> None:
    taken = rules.post("/assignments", assign_body("甘D00001", 4)).json()
    assert "甘C00002" in taken["detail"]
    assert "甘C00002" in taken["detail_zh"]
    occupied = rules.post("/trucks/甘C00002/bay", {"bay": 1, "by": "yard-1"}).json()
    assert "甘B00005" in occupied["detail_zh"]
    too_cold = rules.post("/assignments", assign_body("甘C00003", 2)).json()
    assert "4.0" in too_cold["detail_zh"]


def test_an_unknown_plate_is_not_found(rules: Hall) -> None:
    response = rules.client.get("/trucks/甘Z99999")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_truck"


@pytest.mark.parametrize(
    ("capacity_kg", "code"),
    [
        ("0", "invalid_capacity"),
        ("-5", "invalid_capacity"),
        ("100001", "invalid_capacity"),
        ("12.3456", "invalid_capacity"),
        ("100000.0001", "invalid_capacity"),
        ("NaN", "invalid_request"),
        ("Infinity", "invalid_request"),
        ("lots", "invalid_request"),
        (None, "invalid_request"),
    ],
)
def test_a_capacity_that_cannot_be_loaded_against_is_refused(
    rules: Hall, capacity_kg: str | None, code: str
) -> None:
    sent = len(rules.recorder.sent)
    response = rules.post("/trucks", truck_body("甘N00010", capacity_kg=capacity_kg))
    assert response.status_code == 422, response.text
    refusal = response.json()
    assert refusal["error"] == code
    assert refusal["detail"]
    if code == "invalid_capacity":
        assert refusal["detail_zh"]
    assert len(rules.recorder.sent) == sent
    assert rules.client.get("/trucks/甘N00010").status_code == 404


@pytest.mark.parametrize("capacity_kg", ["100000", "0.001"])
def test_a_capacity_up_to_100_t_to_the_gram_is_accepted(hall: Hall, capacity_kg: str) -> None:
    assert hall.truck("甘H00001", capacity_kg=capacity_kg)["capacity_kg"] == capacity_kg


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/trucks", truck_body("甘N00010") | {"colour": "blue"}),
        ("/assignments", assign_body("甘C00002", 1) | {"priority": 1}),
        ("/trucks/甘C00002/bay", {"bay": 4, "by": "yard-1", "note": ""}),
        ("/trucks/甘B00005/loaded", {"by": "yard-1", "crates": 3}),
        ("/trucks/甘B00006/departure", {"by": "gate-2", "seal": "x"}),
        ("/assignments/{甘C00002}/take-back", {"by": "clerk-1", "when": "now"}),
        ("/suggestions/S1/accept", {"accepted_by": "clerk-1", "all": True}),
        ("/trucks", truck_body("甘N00010", setpoint_c="8.05", refrigerated=True)),
        ("/trucks/甘C00002/bay", {"bay": 0, "by": "yard-1"}),
        ("/assignments", assign_body("甘C00002", 1, assigned_by="clerk 1")),
    ],
    ids=[
        "truck-extra",
        "assign-extra",
        "bay-extra",
        "loaded-extra",
        "departure-extra",
        "take-back-extra",
        "accept-extra",
        "setpoint-finer-than-a-tenth",
        "bay-zero",
        "by-not-an-identifier",
    ],
)
def test_a_body_that_does_not_match_the_schema_is_refused_as_invalid(
    rules: Hall, path: str, body: dict[str, Any]
) -> None:
    path = path.replace("{甘C00002}", assignment_of(rules, "甘C00002"))
    sent, version = len(rules.recorder.sent), rules.service.version
    response = rules.post(path, body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert (len(rules.recorder.sent), rules.service.version) == (sent, version)


# When the broker or the log does not answer


BROKER_ROUTES = [
    ("/trucks", truck_body("甘N00009")),
    ("/assignments", assign_body("甘D00001", 1)),
    ("/assignments/{甘C00002}/take-back", {"by": "clerk-1"}),
    ("/trucks/甘C00002/bay", {"bay": 4, "by": "yard-1"}),
    ("/trucks/甘B00005/loaded", {"by": "yard-1"}),
    ("/trucks/甘B00006/departure", {"by": "gate-2"}),
    ("/suggestions/{suggestion}/accept", {"accepted_by": "clerk-1"}),
]


@pytest.mark.parametrize(("path", "body"), BROKER_ROUTES, ids=[p for p, _ in BROKER_ROUTES])
def test_a_broker_that_does_not_acknowledge_changes_nothing_and_says_so(
    furnished: Hall, path: str, body: dict[str, Any]
) -> None:
    rules = furnished
    path = path.replace("{甘C00002}", assignment_of(rules, "甘C00002"))
    path = path.replace("{suggestion}", rules.client.get("/suggestions").json()["suggestion_id"])
    sent, version = len(rules.recorder.sent), rules.service.version
    rules.recorder.unreachable = True
    response = rules.post(path, body)
    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
    assert (len(rules.recorder.sent), rules.service.version) == (sent, version)
    # And once the broker is back, the same request goes through
    rules.recorder.unreachable = False
    assert rules.post(path, body).status_code in (200, 201)
    assert rules.service.version > version


class CatchingUp:
    """A reader still replaying the topics (or failed while doing so)."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None

    def start(self) -> None:
        pass

    def stop(self, timeout_s: float = 10.0) -> None:
        pass


def checked_in(plate: str) -> TruckCheckedIn:
    return TruckCheckedIn(
        correlation_id=plate,
        occurred_at=T0,
        plate=plate,
        driver="王师傅",
        capacity_g=10 * T,
        refrigerated=False,
        checked_in_by="gate-1",
    )


def line(trade: TradeExecuted) -> ShipmentLine:
    return ShipmentLine(
        trade_id=trade.trade_id,
        lot_id=trade.lot_id,
        farmer_id=trade.farmer_id,
        variety=trade.variety,
        grade=trade.grade,
        crates=trade.crates,
        weight_g=trade.weight_g,
        traded_at=trade.occurred_at,
    )


def assigned(visit: TruckCheckedIn, *trades: TradeExecuted, by: str) -> ShipmentAssigned:
    first = trades[0]
    return ShipmentAssigned(
        correlation_id=visit.plate,
        occurred_at=T0 + timedelta(hours=1),
        visit_id=visit.event_id,
        plate=visit.plate,
        shipment_id=sid(first),
        merchant_id=first.merchant_id,
        destination=first.destination,
        cold_chain=first.cold_chain,
        lines=tuple(line(t) for t in trades),
        weight_g=sum(t.weight_g for t in trades),
        assigned_by=by,
    )


@pytest.fixture
def replaying() -> Iterator[tuple[Hall, CatchingUp]]:
    """A service part-way through rebuilding its yard: one truck and one assignment read so far."""
    service, recorder = build_in_memory()
    reader = CatchingUp()
    service.connect(reader)
    running = Hall(service, recorder)
    truck = checked_in("甘H00001")
    running.sell(sold(1), sold(2))
    for event in (truck, assigned(truck, sold(1), by="clerk-1")):
        running.handle(DISPATCH_YARD, truck.plate, event)
    with running.client:
        yield running, reader


NOT_READY_ROUTES = [
    ("/trucks", truck_body("甘N00009")),
    ("/assignments", assign_body("甘H00001", 2)),
    ("/assignments/{assignment}/take-back", {"by": "clerk-1"}),
    ("/trucks/甘H00001/bay", {"bay": 1, "by": "yard-1"}),
]


@pytest.mark.parametrize(("path", "body"), NOT_READY_ROUTES, ids=[p for p, _ in NOT_READY_ROUTES])
def test_while_the_yard_is_rebuilt_decisions_wait_and_nothing_is_published(
    replaying: tuple[Hall, CatchingUp], path: str, body: dict[str, Any]
) -> None:
    hall, _ = replaying
    path = path.replace("{assignment}", assignment_of(hall, "甘H00001"))
    response = hall.post(path, body)
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"
    assert hall.recorder.sent == []


def test_while_the_yard_is_rebuilt_the_health_check_and_suggestions_say_so(
    replaying: tuple[Hall, CatchingUp],
) -> None:
    hall, reader = replaying
    health = hall.client.get("/healthz")
    assert health.status_code == 503
    assert health.json() == {
        "status": "starting",
        "waiting": {"yard": "catching_up"},
        "degraded": {},
    }
    assert hall.client.get("/suggestions").status_code == 503
    reader.failure = RuntimeError("broker gone")
    assert hall.client.get("/healthz").json()["waiting"] == {"yard": "failed"}
    assert hall.post("/trucks", truck_body("甘N00009")).status_code == 503
    # Once caught up, the same requests go through
    reader.failure = None
    reader.caught_up.set()
    assert hall.client.get("/healthz").status_code == 200
    hall.truck("甘N00009")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/assignments", assign_body("甘H00002", 2)),
        ("/trucks/甘H00002/bay", {"bay": 1, "by": "yard-1"}),
        ("/trucks/甘H00002/departure", {"by": "gate-2"}),
    ],
    ids=["assign", "bay", "departure"],
)
def test_while_the_yard_is_rebuilt_a_truck_not_yet_read_is_not_called_unknown(
    replaying: tuple[Hall, CatchingUp], path: str, body: dict[str, Any]
) -> None:
    # The truck may well be in the log, just not read yet: "check it in first" would be wrong
    hall, _ = replaying
    response = hall.post(path, body)
    assert (response.status_code, response.json()["error"]) == (503, "not_ready")


def test_a_decision_published_but_not_read_back_in_time_is_unconfirmed() -> None:
    # Given a service whose decisions reach the log but are not read back
    recorder = InMemoryPublisher("dispatch")
    service = DispatchService(
        recorder, bays=6, planner=greedy, solver=GREEDY, confirm_timeout_s=0.2
    )
    hall = Hall(service, recorder)
    with hall.client:
        # When the gate checks a truck in
        response = hall.post("/trucks", truck_body("甘H00001"))
        # Then the request says the decision is recorded but not yet confirmed
        assert response.status_code == 503
        refusal = response.json()
        assert refusal["error"] == "decision_unconfirmed"
        assert refusal["detail_zh"]
        [event] = hall.log()
        assert hall.client.get("/trucks").json() == []
        # And when the log is read back later, the truck is there
        service.record_yard(event)
        assert [t["plate"] for t in hall.client.get("/trucks").json()] == ["甘H00001"]


# Two decisions for the same goods at the same moment


@pytest.mark.parametrize(
    "what",
    [{"trade_ids": [tid(1), tid(2)]}, {"shipment_ids": [sid(sold(1, merchant="m-1"))]}],
    ids=["by-trades", "by-shipment"],
)
def test_two_clerks_assigning_the_same_goods_at_once_get_one_truck_and_one_conflict(
    hall: Hall, what: dict[str, Any]
) -> None:
    hall.truck("甘H00001")
    hall.truck("甘H00002")
    hall.sell(sold(1, merchant="m-1"), sold(2, merchant="m-1"))
    start = threading.Barrier(2)
    answers: dict[str, int] = {}

    def clerk(plate: str) -> None:
        body = {"plate": plate, "assigned_by": "clerk-1"} | what
        start.wait(timeout=5)
        answers[plate] = hall.post("/assignments", body).status_code

    threads = [threading.Thread(target=clerk, args=(p,)) for p in ("甘H00001", "甘H00002")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(answers.values()) == [201, 409]
    [standing] = hall.client.get("/assignments").json()
    assert [a for a, code in answers.items() if code == 201] == [standing["plate"]]
    assert len(hall.log()) == 3


class RacingLog:
    """The yard's log as another instance's decision reaches it just before ours."""

    def __init__(self, recorder: InMemoryPublisher) -> None:
        self.recorder = recorder
        self.service: DispatchService | None = None
        self.ahead: list[Message] = []

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        assert self.service is not None
        for event in [*self.ahead, message]:
            self.recorder.publish(spec, key, event)
            self.service.record_yard(event)
        self.ahead.clear()


def test_an_assignment_that_loses_the_race_to_another_instance_is_refused() -> None:
    recorder = InMemoryPublisher("dispatch")
    log = RacingLog(recorder)
    service = DispatchService(log, bays=6, planner=greedy, solver=GREEDY)
    log.service = service
    hall = Hall(service, recorder)
    with hall.client:
        hall.truck("甘H00001")
        hall.truck("甘H00002")
        goods = sold(1)
        hall.sell(goods)
        # Given another instance put the same trade on the other truck a moment ago
        [_, other] = [e for e in hall.log() if isinstance(e, TruckCheckedIn)]
        theirs = assigned(other, goods, by="clerk-at-instance-2")
        log.ahead.append(theirs)
        # When this instance's clerk assigns the trade (it was waiting when checked)
        response = hall.post("/assignments", assign_body("甘H00001", 1))
        # Then the request answers with the conflict, and theirs stands
        assert response.status_code == 409
        assert response.json()["error"] == "shipment_already_assigned"
        assert "甘H00002" in response.json()["detail"]
        [standing] = hall.client.get("/assignments").json()
        assert (standing["assignment_id"], standing["assigned_by"]) == (
            str(theirs.event_id),
            "clerk-at-instance-2",
        )
        # And both decisions are in the log: any instance folding it reaches the same yard
        assert isinstance(hall.log()[-1], ShipmentAssigned)
        assert hall.log()[-2] == theirs
    replica, _ = build_in_memory()
    replica.record_trade(goods)
    for event in hall.log():
        replica.record_yard(event)
    mine = service.read(lambda y: [(a.assignment_id, a.plate) for a in y.assignments(True)])
    assert replica.read(lambda y: [(a.assignment_id, a.plate) for a in y.assignments(True)]) == mine


# Suggested loads and what staff make of them


@pytest.fixture
def planned(hall: Hall) -> tuple[Hall, dict[str, Any]]:
    """Two 10 t trucks and goods that fill both exactly, with a suggestion for them."""
    hall.truck("甘A00001")
    hall.truck("甘B00002")
    hall.sell(
        sold(1, 3 * T, merchant="m-1"),
        sold(2, 2 * T, merchant="m-1"),
        sold(3, 4 * T),
        sold(4, 5 * T),
    )
    hall.sell(sold(5, 6 * T))
    suggestion = hall.client.get("/suggestions").json()
    return hall, suggestion


def load_of(suggestion: dict[str, Any], plate: str) -> list[str]:
    [load] = [load for load in suggestion["loads"] if load["plate"] == plate]
    return [t for part in load["parts"] for t in part["trade_ids"]]


def test_the_suggestion_says_what_goes_on_which_truck(planned: tuple[Hall, dict[str, Any]]) -> None:
    hall, suggestion = planned
    assert suggestion["suggestion_id"].startswith("S")
    assert (suggestion["current"], suggestion["solver"]) == (True, GREEDY)
    assert suggestion["split_by_trade"] is False
    assert suggestion["figures"]["loaded_kg"] == "20000"
    assert (suggestion["figures"]["trucks_used"], suggestion["figures"]["left_behind"]) == (2, 0)
    assert suggestion["left_behind"] == []
    assert sorted(load_of(suggestion, "甘A00001") + load_of(suggestion, "甘B00002")) == sorted(
        tid(n) for n in range(1, 6)
    )
    for load in suggestion["loads"]:
        assert load["load_g"] == sum(part["weight_g"] for part in load["parts"])
        assert (load["fill_ratio_after"], load["capacity_kg"], load["loaded_kg"]) == (
            1.0,
            "10000",
            "0",
        )
        for part in load["parts"]:
            assert part["lot_ids"] == [
                t.replace("ganmibao.extra:", "lot-") for t in part["trade_ids"]
            ]
    # Asking again without a change gives the same suggestion; a change makes it stale
    assert hall.client.get("/suggestions").json()["suggestion_id"] == suggestion["suggestion_id"]
    hall.sell(sold(6))
    assert hall.client.get("/yard").json()["suggestion"]["current"] is False
    assert hall.client.get("/suggestions").json()["current"] is True


def test_with_the_greedy_planner_the_suggestion_and_greedy_figures_agree(hall: Hall) -> None:
    # Given a truck already carrying 4 t, and 2 t more waiting
    hall.truck("甘A00001")
    hall.sell(sold(1, 4 * T), sold(2, 2 * T))
    hall.assign("甘A00001", 1)
    # When the greedy planner suggests loads, it is measured against itself
    suggestion = hall.client.get("/suggestions").json()
    # Then both sets of figures are the same plan's, measured alike
    assert suggestion["figures"] == suggestion["greedy"]


def test_goods_move_trade_by_trade_only_when_that_loads_more(hall: Hall) -> None:
    # Given two 5 t trucks, 4 t of one merchant's goods and 6 t of another's in 3 t lots
    hall.truck("甘A00001", capacity_kg="5000")
    hall.truck("甘B00002", capacity_kg="5000")
    hall.sell(sold(1, 2 * T, merchant="m-1"), sold(2, 2 * T, merchant="m-1"))
    hall.sell(sold(3, 3 * T, merchant="m-2"), sold(4, 3 * T, merchant="m-2"))
    # When loads are suggested: whole shipments would leave 3 t behind, trade by trade none
    suggestion = hall.client.get("/suggestions").json()
    assert suggestion["split_by_trade"] is True
    assert suggestion["figures"]["loaded_kg"] == "10000"
    assert suggestion["left_behind"] == []
    # And when nothing is left behind anyway, shipments stay whole
    hall.ok(f"/suggestions/{suggestion['suggestion_id']}/accept", {"accepted_by": "clerk-1"})
    hall.truck("甘C00003", capacity_kg="5000")
    hall.sell(sold(5, 2 * T, merchant="m-5"), sold(6, 2 * T, merchant="m-5"))
    again = hall.client.get("/suggestions").json()
    assert again["split_by_trade"] is False
    assert [len(p["trade_ids"]) for load in again["loads"] for p in load["parts"]] == [2]


@pytest.mark.parametrize(
    ("how", "decision"),
    [("as-suggested", "suggested"), ("fewer", "edited"), ("other-truck", "edited")],
)
def test_an_assignment_from_a_suggestion_says_whether_staff_changed_it(
    planned: tuple[Hall, dict[str, Any]], how: str, decision: str
) -> None:
    hall, suggestion = planned
    plate, trades = "甘A00001", load_of(suggestion, "甘A00001")
    if how == "fewer":
        trades = trades[:-1]
    elif how == "other-truck":
        hall.truck("甘C00003")
        plate = "甘C00003"
    made = hall.ok(
        "/assignments",
        {
            "plate": plate,
            "trade_ids": trades,
            "assigned_by": "clerk-1",
            "suggestion_id": suggestion["suggestion_id"],
        },
        201,
    )
    assert {(a["decision"], a["suggestion_id"]) for a in made} == {
        (decision, suggestion["suggestion_id"])
    }
    events = [e for e in hall.log() if isinstance(e, ShipmentAssigned)]
    assert {e.decision for e in events} == {decision}


def test_accepting_a_suggestion_assigns_every_load_as_suggested(
    planned: tuple[Hall, dict[str, Any]],
) -> None:
    hall, suggestion = planned
    accepted = hall.ok(
        f"/suggestions/{suggestion['suggestion_id']}/accept", {"accepted_by": "clerk-7"}
    )
    assert accepted["refused"] == []
    assert {(a["decision"], a["assigned_by"]) for a in accepted["assigned"]} == {
        ("suggested", "clerk-7")
    }
    for plate in ("甘A00001", "甘B00002"):
        on_truck = [
            line["trade_id"]
            for a in accepted["assigned"]
            if a["plate"] == plate
            for line in a["lines"]
        ]
        assert sorted(on_truck) == sorted(load_of(suggestion, plate))
    assert hall.client.get("/shipments").json() == []


def test_accepting_a_suggestion_for_some_trucks_assigns_only_theirs(
    planned: tuple[Hall, dict[str, Any]],
) -> None:
    hall, suggestion = planned
    accepted = hall.ok(
        f"/suggestions/{suggestion['suggestion_id']}/accept",
        {"accepted_by": "clerk-7", "plates": ["甘b00002"]},
    )
    assert {a["plate"] for a in accepted["assigned"]} == {"甘B00002"}
    waiting = [
        line["trade_id"] for s in hall.client.get("/shipments").json() for line in s["lines"]
    ]
    assert sorted(waiting) == sorted(load_of(suggestion, "甘A00001"))


def test_a_load_that_no_longer_fits_is_refused_truck_by_truck(
    planned: tuple[Hall, dict[str, Any]],
) -> None:
    hall, suggestion = planned
    # Given a clerk put one of A's suggested trades on B by hand after the suggestion
    taken = load_of(suggestion, "甘A00001")[0]
    hall.ok("/assignments", {"plate": "甘B00002", "trade_ids": [taken], "assigned_by": "c-2"}, 201)
    sent = len(hall.recorder.sent)
    # When staff accept the suggestion
    accepted = hall.ok(
        f"/suggestions/{suggestion['suggestion_id']}/accept", {"accepted_by": "clerk-7"}
    )
    # Then each truck whose load no longer stands is refused with the reason, and nothing goes out
    assert accepted["assigned"] == []
    assert sorted((r["plate"], r["error"]) for r in accepted["refused"]) == [
        ("甘A00001", "shipment_already_assigned"),
        ("甘B00002", "over_capacity"),
    ]
    assert all(r["detail"] for r in accepted["refused"])
    assert len(hall.recorder.sent) == sent


# The yard in one snapshot, and the records the reader hands over


def test_the_yard_snapshot_shows_trucks_bays_goods_and_the_latest_suggestion(hall: Hall) -> None:
    hall.truck("甘A00001")
    hall.truck("甘B00002")
    hall.truck("甘X00003")
    hall.truck("甘Y00004")
    hall.sell(sold(1), sold(2), sold(3), sold(4), sold(5))
    hall.assign("甘A00001", 1)
    hall.bay("甘A00001", 3)
    for n, plate in ((3, "甘X00003"), (5, "甘Y00004")):
        hall.assign(plate, n)
        hall.bay(plate, 1)
        hall.loaded(plate)
        hall.depart(plate)
    before = hall.client.get("/yard").json()
    assert before["version"] == hall.service.version
    assert before["suggestion"] is None
    assert before["cold_chain_c"] == ["7.0", "10.0"]
    assert [(b["bay"], b["plate"]) for b in before["bays"]] == [
        (1, None),
        (2, None),
        (3, "甘A00001"),
        (4, None),
        (5, None),
        (6, None),
    ]
    assert [(t["plate"], t["status"]) for t in before["trucks"]] == [
        ("甘A00001", "loading"),
        ("甘B00002", "waiting"),
    ]
    # Departed trucks are listed the latest out first
    assert [t["plate"] for t in before["departed"]] == ["甘Y00004", "甘X00003"]
    assert [s["lines"][0]["trade_id"] for s in before["shipments"]] == [tid(2), tid(4)]
    assert [a["lines"][0]["trade_id"] for a in before["assignments"]] == [tid(1)]
    suggestion = hall.client.get("/suggestions").json()
    after = hall.client.get("/yard").json()
    assert after["suggestion"]["suggestion_id"] == suggestion["suggestion_id"]
    assert after["suggestion"]["current"] is True


def test_the_reader_hands_trades_and_yard_records_to_the_service(hall: Hall) -> None:
    truck = checked_in("甘H00001")
    goods = sold(1)
    hall.handle(TRADES, goods.book, goods)
    hall.handle(TRADES, goods.book, goods.model_copy(update={"event_id": UUID(int=7)}))
    hall.handle(DISPATCH_YARD, truck.plate, truck)
    hall.handle(DISPATCH_YARD, truck.plate, assigned(truck, goods, by="clerk-1"))
    # A decision that does not stand is folded, not rejected: every instance folds the same
    hall.handle(DISPATCH_YARD, truck.plate, assigned(truck, goods, by="clerk-2"))
    [standing] = hall.client.get("/assignments").json()
    assert standing["assigned_by"] == "clerk-1"
    assert hall.client.get("/shipments").json() == []
    with pytest.raises(RejectedRecord):
        hall.handle(TRADES, "x", checked_in("甘H00002"))
