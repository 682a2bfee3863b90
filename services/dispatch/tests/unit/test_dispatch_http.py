"""The dispatch HTTP API and consumer handler on the in-memory publisher, with no broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dispatch.bootstrap import build_in_memory
from dispatch.entrypoints.http import create_app
from dispatch.entrypoints.projection import make_handler
from dispatch.service import Assign, DispatchService
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded, ShipmentAssigned, TradeExecuted, TruckCheckedIn
from melon_contracts.reference import Grade
from melon_contracts.topics import DISPATCH_ASSIGNMENTS, LOTS_GRADED, TRADES, TRUCKS_EVENTS
from melon_contracts.transport import InMemoryPublisher

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)


def trade(n: int, weight_g: int = 1_000_000, *, cold_chain: bool = False) -> TradeExecuted:
    return TradeExecuted(
        correlation_id=f"lot-{n}",
        occurred_at=T0 + timedelta(minutes=n),
        trade_id=f"ganmibao.extra:{n}",
        book="ganmibao.extra",
        sequence=n,
        lot_id=f"lot-{n}",
        farmer_id="farmer-7",
        bid_id=f"bid-{n}",
        merchant_id="merchant-3",
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=50,
        weight_g=weight_g,
        price_fen_per_kg=680,
        amount_fen=weight_g * 680 // 1000,
        destination="Shanghai",
        cold_chain=cold_chain,
    )


def truck_body(plate: str = "甘H12345", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "plate": plate,
        "driver": "王师傅",
        "phone": "13900000000",
        "capacity_kg": "5000",
        "refrigerated": True,
        "checked_in_by": "gate-1",
    }
    return body | changes


class Yard:
    """A running service with a client and a way to feed it records as the reader would."""

    def __init__(self, service: DispatchService, publisher: InMemoryPublisher) -> None:
        self.service = service
        self.publisher = publisher
        self.handle = make_handler(service)
        self.client = TestClient(create_app(service))

    def trade(self, *trades: TradeExecuted) -> None:
        for t in trades:
            self.handle(TRADES, t.book, t)

    def check_in(self, plate: str = "甘H12345", **changes: Any) -> dict[str, Any]:
        response = self.client.post("/trucks", json=truck_body(plate, **changes))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def yard() -> Iterator[Yard]:
    service, publisher = build_in_memory()
    running = Yard(service, publisher)
    with running.client:
        yield running


def test_a_checked_in_truck_is_published_keyed_by_plate_and_listed(yard: Yard) -> None:
    # When the gate checks a truck in, typing the plate in lower case
    truck = yard.check_in("甘h12345", capacity_kg="12.5", refrigerated=False)
    # Then the truck is in the yard with its capacity in grams and kg
    assert truck["plate"] == "甘H12345"
    assert (truck["capacity_g"], truck["capacity_kg"]) == (12_500, "12.5")
    assert (truck["loaded_g"], truck["remaining_kg"], truck["shipment_ids"]) == (0, "12.5", [])
    # And a TruckCheckedIn went to trucks.events, keyed and correlated by plate
    [(topic, key, event)] = yard.publisher.sent
    assert (topic, key) == (TRUCKS_EVENTS.name, "甘H12345")
    assert isinstance(event, TruckCheckedIn)
    assert event.correlation_id == "甘H12345"
    assert (event.capacity_g, event.refrigerated) == (12_500, False)
    assert yard.client.get("/trucks").json() == [truck]


def test_a_plate_already_in_the_yard_is_refused(yard: Yard) -> None:
    yard.check_in("甘H12345")
    response = yard.client.post("/trucks", json=truck_body("甘H12345"))
    assert response.status_code == 409
    assert response.json()["error"] == "truck_already_in_yard"
    assert len(yard.publisher.sent) == 1


@pytest.mark.parametrize(
    ("capacity_kg", "error"),
    [
        ("0", "invalid_capacity"),
        ("-5", "invalid_capacity"),
        ("12.3456", "invalid_capacity"),
        ("100001", "invalid_capacity"),
        ("lots", "invalid_request"),
        (None, "invalid_request"),
    ],
)
def test_a_capacity_that_cannot_be_loaded_against_is_refused_with_the_reason(
    yard: Yard, capacity_kg: str | None, error: str
) -> None:
    response = yard.client.post("/trucks", json=truck_body(capacity_kg=capacity_kg))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == error
    assert body["detail"]
    assert yard.publisher.sent == []


def test_each_trade_becomes_one_waiting_shipment(yard: Yard) -> None:
    # Given a trade delivered twice, and another trade
    yard.trade(trade(1, 1_234_567), trade(1, 1_234_567), trade(2, cold_chain=True))
    # When staff list the shipments
    shipments = yard.client.get("/shipments").json()
    # Then each trade is one waiting shipment with its weight also in kg
    assert [(s["shipment_id"], s["weight_kg"], s["status"]) for s in shipments] == [
        ("ganmibao.extra:1", "1234.567", "waiting"),
        ("ganmibao.extra:2", "1000", "waiting"),
    ]
    assert shipments[1]["cold_chain"] is True
    assert shipments[0]["lot_id"] == "lot-1"
    assert shipments[0]["plate"] is None


def test_assigning_shipments_publishes_one_event_per_shipment_traceable_to_its_lot(
    yard: Yard,
) -> None:
    # Given a refrigerated 5 t truck and three 1 t shipments
    yard.check_in("甘H12345")
    yard.trade(trade(1), trade(2, cold_chain=True), trade(3))
    yard.publisher.sent.clear()
    # When staff put two of them on the truck
    response = yard.client.post(
        "/assignments",
        json={
            "plate": "甘H12345",
            "shipment_ids": ["ganmibao.extra:1", "ganmibao.extra:2"],
            "assigned_by": "clerk-2",
        },
    )
    # Then the truck carries 2 t and has 3 t left
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["truck"]["shipment_ids"] == ["ganmibao.extra:1", "ganmibao.extra:2"]
    assert (body["truck"]["loaded_kg"], body["truck"]["remaining_kg"]) == ("2000", "3000")
    assert [(s["status"], s["plate"]) for s in body["shipments"]] == [("assigned", "甘H12345")] * 2
    # And one ShipmentAssigned per shipment, keyed by plate and correlated by lot
    assert [(topic, key, event.correlation_id) for topic, key, event in yard.publisher.sent] == [
        (DISPATCH_ASSIGNMENTS.name, "甘H12345", "lot-1"),
        (DISPATCH_ASSIGNMENTS.name, "甘H12345", "lot-2"),
    ]
    # And only the third shipment still waits
    waiting = yard.client.get("/shipments", params={"status": "waiting"}).json()
    assert [s["shipment_id"] for s in waiting] == ["ganmibao.extra:3"]
    assigned = yard.client.get("/shipments", params={"status": "assigned"}).json()
    assert len(assigned) == 2


@pytest.mark.parametrize(
    ("plate", "shipments", "status", "error"),
    [
        pytest.param("甘Z99999", [1], 404, "unknown_truck", id="unknown truck"),
        pytest.param("甘D00001", [1, 9], 404, "unknown_shipment", id="unknown shipment"),
        pytest.param("甘D00001", [3], 409, "shipment_already_assigned", id="already assigned"),
        pytest.param("甘D00001", [1, 1], 409, "shipment_already_assigned", id="listed twice"),
        pytest.param("甘D00001", [1, 4], 409, "over_capacity", id="over capacity"),
        pytest.param("甘D00001", [2], 409, "cold_chain_required", id="cold chain"),
        pytest.param("甘D00001", [], 422, "invalid_request", id="no shipments"),
    ],
)
def test_an_assignment_that_breaks_a_rule_is_refused_and_publishes_nothing(
    yard: Yard, plate: str, shipments: list[int], status: int, error: str
) -> None:
    # Given a dry 3 t truck already carrying shipment 3, and shipments 1, 2 (cold chain), 4 (2 t)
    yard.check_in("甘D00001", capacity_kg="3000", refrigerated=False)
    yard.trade(trade(1), trade(2, cold_chain=True), trade(3), trade(4, 2_000_000))
    yard.service.assign(Assign("甘D00001", ["ganmibao.extra:3"], "clerk-1"))
    yard.publisher.sent.clear()
    # When staff try the assignment
    response = yard.client.post(
        "/assignments",
        json={
            "plate": plate,
            "shipment_ids": [f"ganmibao.extra:{n}" for n in shipments],
            "assigned_by": "clerk-2",
        },
    )
    # Then it is refused with a code and a reason, and nothing is published
    assert response.status_code == status
    body = response.json()
    assert (body["error"], bool(body["detail"])) == (error, True)
    assert yard.publisher.sent == []
    assert yard.client.get("/trucks").json()[0]["shipment_ids"] == ["ganmibao.extra:3"]


class SlowPublisher(InMemoryPublisher):
    """Waits while publishing, so without a lock two racing requests would both pass the checks."""

    def publish(self, spec: Any, key: str, message: Message) -> None:
        threading.Event().wait(0.05)
        super().publish(spec, key, message)


def test_racing_requests_never_put_one_shipment_on_two_trucks() -> None:
    # Given one shipment and two trucks
    publisher = SlowPublisher("dispatch")
    service = DispatchService(publisher)
    handle = make_handler(service)
    handle(TRADES, None, trade(1))
    client = TestClient(create_app(service))
    for plate in ("甘A00001", "甘A00002"):
        assert client.post("/trucks", json=truck_body(plate)).status_code == 201
    # When two clerks assign it at the same moment
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def assign(plate: str) -> None:
        start.wait()
        try:
            service.assign(Assign(plate, ["ganmibao.extra:1"], "clerk"))
            outcomes.append("assigned")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=assign, args=(p,)) for p in ("甘A00001", "甘A00002")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    # Then exactly one wins
    assert sorted(outcomes) == ["ShipmentAlreadyAssigned", "assigned"]
    assert len(publisher.on(DISPATCH_ASSIGNMENTS)) == 1


def test_a_restarted_service_rebuilds_the_same_yard_from_the_topics(yard: Yard) -> None:
    # Given a yard with trucks, trades and assignments
    yard.check_in("甘A00001")
    yard.check_in("甘A00002", refrigerated=False)
    trades = [trade(1), trade(2, cold_chain=True), trade(3)]
    yard.trade(*trades)
    yard.service.assign(Assign("甘A00001", ["ganmibao.extra:2"], "clerk-1"))
    yard.service.assign(Assign("甘A00002", ["ganmibao.extra:3", "ganmibao.extra:1"], "clerk-1"))
    # When a fresh service reads the topics from the beginning, assignments first and twice over
    fresh, _ = build_in_memory()
    handle = make_handler(fresh)
    records = [(DISPATCH_ASSIGNMENTS, m) for m in yard.publisher.on(DISPATCH_ASSIGNMENTS)]
    records += [(TRADES, t) for t in reversed(trades)]
    records += [(TRUCKS_EVENTS, m) for m in reversed(yard.publisher.on(TRUCKS_EVENTS))]
    for spec, message in records + records:
        handle(spec, None, message)
    # Then it shows the same trucks and shipments
    with TestClient(create_app(fresh)) as client:
        assert client.get("/trucks").json() == yard.client.get("/trucks").json()
        assert client.get("/shipments").json() == yard.client.get("/shipments").json()


def test_the_reader_seeing_the_services_own_events_again_changes_nothing(yard: Yard) -> None:
    # Given a truck with a shipment, applied when they were published
    yard.check_in("甘A00001")
    yard.trade(trade(1))
    yard.service.assign(Assign("甘A00001", ["ganmibao.extra:1"], "clerk-1"))
    before = yard.client.get("/trucks").json()
    # When the reader delivers those events
    for spec in (TRUCKS_EVENTS, DISPATCH_ASSIGNMENTS):
        for message in yard.publisher.on(spec):
            yard.handle(spec, "甘A00001", message)
    # Then the truck is loaded once
    assert yard.client.get("/trucks").json() == before
    assert before[0]["loaded_g"] == 1_000_000


def test_a_record_of_a_kind_dispatch_does_not_read_is_rejected_for_the_dead_letter_topic(
    yard: Yard,
) -> None:
    graded = LotGraded(
        correlation_id="lot-1",
        lot_id="lot-1",
        station_id="ws-1",
        ticket_no=1,
        farmer_id="farmer-7",
        variety="ganmibao",
        crates=50,
        net_g=1_000_000,
        grade=Grade.EXTRA,
        profile_id="coop-2025",
        profile_version=1,
        brix_mean=14.2,
        brix_samples=5,
        reason="sweet",
    )
    with pytest.raises(ValueError, match="does not read LotGraded"):
        yard.handle(LOTS_GRADED, "lot-1", graded)


class FakeReader:
    """Stands in for the topic reader so health can be driven by hand."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self, timeout_s: float = 10.0) -> None:
        self.running = False


def test_the_service_is_unhealthy_and_takes_no_requests_until_the_yard_is_rebuilt() -> None:
    # Given a service whose reader has not caught up
    service, publisher = build_in_memory()
    reader = FakeReader()
    stopped: list[bool] = []
    service.connect(reader, on_stop=lambda: stopped.append(True))
    with TestClient(create_app(service)) as client:
        assert reader.running
        # Then health is 503 and a check-in is refused without publishing
        assert client.get("/healthz").status_code == 503
        refused = client.post("/trucks", json=truck_body())
        assert (refused.status_code, refused.json()["error"]) == (503, "not_ready")
        assert publisher.sent == []
        # When the reader catches up
        reader.caught_up.set()
        # Then the service is healthy and takes requests
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/trucks", json=truck_body()).status_code == 201
        # When the reader fails
        reader.failure = RuntimeError("broker gone")
        assert client.get("/healthz").status_code == 503
    # And shutdown stops the reader and closes the publisher
    assert (reader.running, stopped) == (False, [True])


def test_an_event_the_broker_did_not_take_is_not_applied() -> None:
    service = DispatchService(InMemoryPublisher("dispatch", unreachable=True))
    with TestClient(create_app(service)) as client:
        response = client.post("/trucks", json=truck_body())
        assert (response.status_code, response.json()["error"]) == (503, "broker_unavailable")
        assert client.get("/trucks").json() == []


def test_shipment_assigned_carries_the_trade_and_weight(yard: Yard) -> None:
    yard.check_in("甘A00001")
    yard.trade(trade(5, 750_000, cold_chain=True))
    yard.service.assign(Assign("甘a00001", ["ganmibao.extra:5"], "clerk-1"))
    [event] = yard.publisher.on(DISPATCH_ASSIGNMENTS)
    assert isinstance(event, ShipmentAssigned)
    assert (event.trade_id, event.lot_id, event.plate, event.weight_g, event.cold_chain) == (
        "ganmibao.extra:5",
        "lot-5",
        "甘A00001",
        750_000,
        True,
    )
