"""The HTTP API over the in-memory publisher: no broker, no readers unless a test adds fakes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.bootstrap import build_in_memory
from ingest.domain.grading import SKELETON_PROFILE
from ingest.entrypoints.consumers import Grader
from ingest.entrypoints.http import create_app
from ingest.runtime import IngestService
from ingest.service import LotService
from melon_contracts.events import LotGraded, LotWeighed
from melon_contracts.topics import LOTS_GRADED, LOTS_WEIGHED
from melon_contracts.transport import InMemoryPublisher


def body(**changes: Any) -> dict[str, Any]:
    lot = {
        "lot_id": "L-001",
        "station_id": "ws-1",
        "farmer_id": "F-7",
        "variety": "xizhoumi",
        "crates": 40,
        "net_kg": "512.5",
        "brix": [13.0, 13.4, 13.2, 13.1, 13.3],
        "operator_id": "op-3",
    }
    return {**lot, **changes}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher("ingest")


@pytest.fixture
def service(publisher: InMemoryPublisher) -> IngestService:
    return build_in_memory(publisher=publisher)


@pytest.fixture
def client(service: IngestService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def test_recording_a_lot_publishes_it_and_returns_it_weighed(
    client: TestClient, publisher: InMemoryPublisher
) -> None:
    # When an operator posts a weighed lot
    response = client.post("/lots", json=body())
    # Then it is created, shown in grams and as a kg string, and one LotWeighed went out
    assert response.status_code == 201, response.text
    lot = response.json()
    assert {k: lot[k] for k in ("lot_id", "status", "net_g", "net_kg", "variety_zh")} == {
        "lot_id": "L-001",
        "status": "weighed",
        "net_g": 512_500,
        "net_kg": "512.5",
        "variety_zh": "西州蜜",
    }
    assert lot["grade"] is None
    ((topic, key, event),) = publisher.sent
    assert (topic, key, event.correlation_id) == ("lots.weighed", "L-001", "L-001")
    # And it can be read back at once
    assert client.get("/lots/L-001").json() == lot


@pytest.mark.parametrize(
    "net_kg", ["512.5", 512.5, "512.500"], ids=["same-string", "as-number", "trailing-zeros"]
)
def test_repeating_the_same_lot_returns_it_without_publishing_again(
    client: TestClient, publisher: InMemoryPublisher, net_kg: Any
) -> None:
    # Given a recorded lot
    first = client.post("/lots", json=body())
    # When the operator's console posts the same content again
    again = client.post("/lots", json=body(net_kg=net_kg))
    # Then the existing lot comes back with 200 and nothing more is published
    assert (again.status_code, again.json()) == (200, first.json())
    assert len(publisher.sent) == 1


def test_same_lot_id_with_other_content_is_a_conflict(
    client: TestClient, publisher: InMemoryPublisher
) -> None:
    client.post("/lots", json=body())
    response = client.post("/lots", json=body(net_kg="498.0"))
    assert response.status_code == 409
    assert response.json()["error"] == "lot_already_weighed"
    assert "'L-001' was already weighed" in response.json()["detail"]
    assert len(publisher.sent) == 1


@pytest.mark.parametrize(
    ("changes", "error", "detail"),
    [
        pytest.param({"variety": "hami"}, "unknown_variety", "variety 'hami'", id="variety"),
        pytest.param({"station_id": "ws-9"}, "unknown_station", "'ws-9'", id="station"),
        pytest.param({"net_kg": "0"}, "invalid_lot", "more than 0 kg", id="zero-weight"),
        pytest.param({"net_kg": -5}, "invalid_lot", "more than 0 kg", id="negative-weight"),
        pytest.param({"net_kg": "12.3456"}, "invalid_lot", "more precision", id="sub-gram"),
        pytest.param({"net_kg": "NaN"}, "invalid_request", "finite number", id="nan-weight"),
        pytest.param({"net_kg": "200000"}, "invalid_lot", "net_g", id="over-contract-limit"),
        pytest.param({"brix": [13.0, 35.5]}, "invalid_lot", "35.5 is outside 0-35", id="brix"),
        pytest.param({"brix": []}, "invalid_lot", "1 to 100 Brix readings", id="no-brix"),
        pytest.param({"crates": 0}, "invalid_lot", "at least 1 crate", id="no-crates"),
        pytest.param({"crates": "3"}, "invalid_request", "body.crates", id="crates-as-text"),
        pytest.param({"lot_id": "L 001"}, "invalid_request", "body.lot_id", id="bad-lot-id"),
        pytest.param({"colour": "green"}, "invalid_request", "body.colour", id="unknown-field"),
    ],
)
def test_entry_breaking_a_rule_is_refused_with_422_and_the_reason(
    client: TestClient,
    publisher: InMemoryPublisher,
    changes: dict[str, Any],
    error: str,
    detail: str,
) -> None:
    response = client.post("/lots", json=body(**changes))
    assert response.status_code == 422
    assert response.json()["error"] == error
    assert detail in response.json()["detail"]
    assert publisher.sent == []


def test_missing_field_is_named(client: TestClient) -> None:
    lot = body()
    del lot["operator_id"]
    response = client.post("/lots", json=lot)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_request")
    assert "body.operator_id: Field required" in response.json()["detail"]


def test_nan_brix_in_raw_json_is_refused(client: TestClient) -> None:
    raw = '{"lot_id": "L-1", "station_id": "ws-1", "farmer_id": "F", "variety": "xizhoumi",'
    raw += ' "crates": 1, "net_kg": 1, "brix": [NaN], "operator_id": "op"}'
    response = client.post("/lots", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "outside 0-35" in response.json()["detail"]


def test_graded_lot_shows_its_grade_in_chinese_and_why(
    client: TestClient, service: IngestService, publisher: InMemoryPublisher
) -> None:
    # Given a recorded lot that the grader has graded
    client.post("/lots", json=body())
    (weighed,) = publisher.on(LOTS_WEIGHED)
    assert isinstance(weighed, LotWeighed)
    Grader(service.lots)(LOTS_WEIGHED, "L-001", weighed)
    # When anyone reads the lot
    lot = client.get("/lots/L-001").json()
    # Then it is graded, with the profile and the farmer-checkable reason
    (graded,) = publisher.on(LOTS_GRADED)
    assert isinstance(graded, LotGraded)
    assert {
        k: lot[k]
        for k in ("status", "grade", "grade_zh", "profile_id", "profile_version", "brix_mean")
    } == {
        "status": "graded",
        "grade": "class_i",
        "grade_zh": "一级",
        "profile_id": "minqin-honeydew-skeleton",
        "profile_version": 1,
        "brix_mean": 13.2,
    }
    assert lot["reason"] == graded.reason == SKELETON_PROFILE.grade(weighed.brix).reason


def test_unknown_lot_is_404(client: TestClient) -> None:
    response = client.get("/lots/L-404")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown_lot", "detail": "no lot 'L-404' has been weighed"}


def test_lots_are_listed_newest_first_up_to_the_limit(client: TestClient) -> None:
    for lot_id in ("L-1", "L-2", "L-3"):
        assert client.post("/lots", json=body(lot_id=lot_id)).status_code == 201
    listed = client.get("/lots", params={"limit": 2}).json()["lots"]
    assert [lot["lot_id"] for lot in listed] == ["L-3", "L-2"]
    assert len(client.get("/lots").json()["lots"]) == 3


def test_limit_below_one_is_refused(client: TestClient) -> None:
    response = client.get("/lots", params={"limit": 0})
    assert (response.status_code, response.json()["error"]) == (422, "invalid_request")


def test_lot_the_broker_did_not_acknowledge_is_503_and_not_recorded() -> None:
    service = IngestService(
        lots=LotService(InMemoryPublisher("ingest", unreachable=True), ["ws-1"], SKELETON_PROFILE)
    )
    with TestClient(create_app(service)) as client:
        response = client.post("/lots", json=body())
        assert (response.status_code, response.json()["error"]) == (503, "broker_unavailable")
        assert client.get("/lots/L-001").status_code == 404


def test_healthz_is_ok_when_no_reader_is_behind(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


class BehindReader:
    """A reader still catching up with its topics."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None
        self.started = False
        self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopped = True


def test_healthz_is_503_naming_the_reader_that_is_behind_and_lifespan_runs_readers() -> None:
    # Given a service whose projection is still rebuilding the read model
    projection = BehindReader()
    service = build_in_memory()
    service.projection = projection
    with TestClient(create_app(service)) as client:
        # When the health is asked, Then it is 503 and names the projection
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "not_ready": {"projection": "catching up with the topics"},
        }
        assert projection.started
        # And once the projection has caught up, it is 200
        projection.caught_up.set()
        assert client.get("/healthz").status_code == 200
    # And shutting down stops the reader
    assert projection.stopped
