"""Dispatch's Prometheus metrics follow the yard, on a clock the test controls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dispatch.bootstrap import GREEDY, Loopback, greedy
from dispatch.entrypoints.http import create_app
from dispatch.entrypoints.projection import make_handler
from dispatch.service import DispatchService
from melon_contracts.events import ShipmentAssigned, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import DISPATCH_YARD, TRADES
from melon_contracts.transport import InMemoryPublisher

T = 1_000_000
"""One tonne in grams."""

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Clock:
    """The service's clock, moved by hand: decisions are stamped with it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)


def sold(n: int, weight_g: int, *, merchant: str, minutes: float) -> TradeExecuted:
    return TradeExecuted(
        correlation_id=f"lot-{n}",
        occurred_at=T0 + timedelta(minutes=minutes),
        trade_id=f"ganmibao.extra:{n}",
        book="ganmibao.extra",
        sequence=n,
        lot_id=f"lot-{n}",
        farmer_id="farmer-1",
        bid_id=f"bid-{n}",
        merchant_id=merchant,
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=max(1, weight_g // 20_000),
        weight_g=weight_g,
        price_fen_per_kg=680,
        amount_fen=weight_g * 680 // 1000,
        destination="上海",
        cold_chain=False,
    )


class CatchingUp:
    """A reader still replaying the topics."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None

    def start(self) -> None:
        pass

    def stop(self, timeout_s: float = 10.0) -> None:
        pass


class Office:
    """A dispatch service on the in-memory log and a hand-moved clock, with its client."""

    def __init__(self, reader: CatchingUp | None = None) -> None:
        self.clock = Clock(T0)
        self.recorder = InMemoryPublisher("dispatch")
        loopback = Loopback(self.recorder)
        self.service = DispatchService(
            loopback, bays=6, planner=greedy, solver=GREEDY, clock=self.clock
        )
        loopback.service = self.service
        if reader is not None:
            self.service.connect(reader)
        self.handle = make_handler(self.service)
        self.client = TestClient(create_app(self.service))

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = self.client.post(path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    def truck(self, plate: str, capacity_kg: str) -> None:
        body = {
            "plate": plate,
            "driver": "王师傅",
            "capacity_kg": capacity_kg,
            "refrigerated": False,
            "checked_in_by": "gate-1",
        }
        self.post("/trucks", body, 201)

    def assign(self, plate: str, *trades: int, status: int = 201) -> Any:
        body = {
            "plate": plate,
            "trade_ids": [f"ganmibao.extra:{n}" for n in trades],
            "assigned_by": "clerk-1",
        }
        return self.post("/assignments", body, status)

    def drive_out(self, plate: str, *, bay_at: float, loaded_at: float, out_at: float) -> None:
        self.clock.at(bay_at)
        self.post(f"/trucks/{plate}/bay", {"bay": 1, "by": "yard-1"})
        self.clock.at(loaded_at)
        self.post(f"/trucks/{plate}/loaded", {"by": "yard-1"})
        self.clock.at(out_at)
        self.post(f"/trucks/{plate}/departure", {"by": "gate-2"})

    def scrape(self) -> Samples:
        response = self.client.get("/metrics")
        assert response.status_code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def trucks_by_status(samples: Samples) -> dict[str, float]:
    return {
        status: value(samples, "melon_dispatch_trucks", status=status)
        for status in ("waiting", "assigned", "loading", "loaded")
    }


@pytest.fixture
def office() -> Iterator[Office]:
    running = Office()
    with running.client:
        yield running


def test_the_metrics_follow_a_truck_from_the_gate_to_the_road(office: Office) -> None:
    # Given m-1 sold 3 t an hour before the gate opened and 2 t half an hour later, m-2 1 t
    office.handle(TRADES, "b", sold(1, 3 * T, merchant="m-1", minutes=-60))
    office.handle(TRADES, "b", sold(2, 2 * T, merchant="m-1", minutes=-30))
    office.handle(TRADES, "b", sold(3, T, merchant="m-2", minutes=-10))
    # And two trucks checked in at 06:00
    office.truck("甘A00001", "10000")
    office.truck("甘B00002", "5000")
    samples = office.scrape()
    assert trucks_by_status(samples) == {"waiting": 2, "assigned": 0, "loading": 0, "loaded": 0}
    assert value(samples, "melon_dispatch_shipments_waiting") == 2
    assert value(samples, "melon_dispatch_waiting_kg") == 6000
    assert value(samples, "melon_dispatch_oldest_waiting_seconds") == 3600
    # When m-1's goods go on the first truck at 06:10
    office.clock.at(10)
    [made] = office.assign("甘A00001", 1, 2)
    assert made["weight_kg"] == "5000"
    samples = office.scrape()
    assert trucks_by_status(samples) == {"waiting": 1, "assigned": 1, "loading": 0, "loaded": 0}
    assert value(samples, "melon_dispatch_shipments_waiting") == 1
    assert value(samples, "melon_dispatch_open_fill_ratio") == 0.5
    # And it goes to a bay at 06:20 ...
    office.clock.at(20)
    office.post("/trucks/甘A00001/bay", {"bay": 1, "by": "yard-1"})
    samples = office.scrape()
    assert trucks_by_status(samples)["loading"] == 1
    assert value(samples, "melon_dispatch_bays_occupied") == 1
    # ... is loaded at 07:30, and leaves at 08:00
    office.clock.at(90)
    office.post("/trucks/甘A00001/loaded", {"by": "yard-1"})
    assert trucks_by_status(office.scrape())["loaded"] == 1
    office.clock.at(120)
    office.post("/trucks/甘A00001/departure", {"by": "gate-2"})
    # Then the departed truck counts no more, and its stay, fill and trades' waits are observed
    samples = office.scrape()
    assert trucks_by_status(samples) == {"waiting": 1, "assigned": 0, "loading": 0, "loaded": 0}
    assert value(samples, "melon_dispatch_bays_occupied") == 0
    dwell = "melon_dispatch_truck_dwell_seconds"
    assert (value(samples, f"{dwell}_count"), value(samples, f"{dwell}_sum")) == (1, 7200)
    assert value(samples, f"{dwell}_bucket", le="5400.0") == 0
    assert value(samples, f"{dwell}_bucket", le="7200.0") == 1
    fill = "melon_dispatch_departure_fill_ratio"
    assert (value(samples, f"{fill}_count"), value(samples, f"{fill}_sum")) == (1, 0.5)
    assert value(samples, f"{fill}_bucket", le="0.5") == 1
    waited = "melon_dispatch_trade_to_departure_seconds"
    # Trade 1 waited 3 h for its truck to leave, trade 2 two and a half
    assert (value(samples, f"{waited}_count"), value(samples, f"{waited}_sum")) == (2, 19800)
    assert value(samples, f"{waited}_bucket", le="14400.0") == 2
    # And the truck still inside has been there two hours; m-2's goods have waited 2 h 10 min
    assert value(samples, "melon_dispatch_longest_dwell_seconds") == 7200
    assert value(samples, "melon_dispatch_oldest_waiting_seconds") == 7800
    stood = [("TruckCheckedIn", 2), ("ShipmentAssigned", 1), ("TruckStatusChanged", 3)]
    for kind, count in stood:
        assert value(samples, "melon_dispatch_decisions_total", kind=kind, outcome="stood") == count


def test_refused_requests_and_decisions_that_lose_a_race_are_counted(office: Office) -> None:
    office.handle(TRADES, "b", sold(1, 4 * T, merchant="m-1", minutes=0))
    office.truck("甘A00001", "10000")
    office.truck("甘B00002", "3000")
    office.assign("甘B00002", 1, status=409)
    office.assign("甘A00001", 1)
    # Another instance's assignment of the same trade reaches the log after ours
    [ours] = [e for e in office.recorder.on(DISPATCH_YARD) if isinstance(e, ShipmentAssigned)]
    theirs = ours.model_copy(update={"event_id": uuid4(), "assigned_by": "clerk-2"})
    office.handle(DISPATCH_YARD, ours.plate, theirs)
    samples = office.scrape()
    assert value(samples, "melon_dispatch_refusals_total", reason="over_capacity") == 1
    refused = value(
        samples, "melon_dispatch_decisions_total", kind="ShipmentAssigned", outcome="refused"
    )
    assert refused == 1


def test_the_latest_suggestion_and_its_solve_time_are_exposed(office: Office) -> None:
    office.handle(TRADES, "b", sold(1, 4 * T, merchant="m-1", minutes=0))
    office.truck("甘A00001", "8000")
    assert value(office.scrape(), "melon_dispatch_suggestion_solve_seconds_count") == 0
    office.client.get("/suggestions")
    samples = office.scrape()
    assert value(samples, "melon_dispatch_suggestion_solve_seconds_count") == 1
    for planner in ("optimiser", "first_fit_decreasing"):
        assert value(samples, "melon_dispatch_suggested_fill_ratio", planner=planner) == 0.5


def test_a_day_replayed_at_start_is_not_counted_again() -> None:
    # Given a day in which one truck came, loaded and left
    day = Office()
    with day.client:
        day.handle(TRADES, "b", sold(1, 4 * T, merchant="m-1", minutes=0))
        day.truck("甘A00001", "8000")
        day.assign("甘A00001", 1)
        day.drive_out("甘A00001", bay_at=10, loaded_at=30, out_at=60)
    # When a restarted instance rebuilds its yard from the log
    reader = CatchingUp()
    restarted = Office(reader)
    with restarted.client:
        restarted.handle(TRADES, "b", sold(1, 4 * T, merchant="m-1", minutes=0))
        for event in day.recorder.on(DISPATCH_YARD):
            restarted.handle(DISPATCH_YARD, event.correlation_id, event)
        reader.caught_up.set()
        # Then its histograms and counters start from nothing, while the gauges show the yard
        samples = restarted.scrape()
        assert value(samples, "melon_dispatch_truck_dwell_seconds_count") == 0
        assert value(samples, "melon_dispatch_trade_to_departure_seconds_count") == 0
        assert [k for k in samples if k[0] == "melon_dispatch_decisions_total"] == []
        assert trucks_by_status(samples) == {
            "waiting": 0,
            "assigned": 0,
            "loading": 0,
            "loaded": 0,
        }
        # And what happens once it has caught up is counted
        restarted.handle(TRADES, "b", sold(2, 2 * T, merchant="m-2", minutes=70))
        restarted.clock.at(80)
        restarted.truck("甘A00001", "8000")
        restarted.assign("甘A00001", 2)
        restarted.drive_out("甘A00001", bay_at=90, loaded_at=100, out_at=110)
        samples = restarted.scrape()
        dwell = "melon_dispatch_truck_dwell_seconds"
        assert (value(samples, f"{dwell}_count"), value(samples, f"{dwell}_sum")) == (1, 1800)
