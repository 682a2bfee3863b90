"""The weigh stations' HTTP API over the in-memory broker, with a clock the tests move.

Scale readings are fed straight to the service (the gateway's part is tested on its own), so each
test can put a load on a scale, let it settle and weigh.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from ingest.bootstrap import LoopbackPublisher, build_in_memory, default_profile, station_setups
from ingest.domain.tare import DEFAULT_CRATE_TARES
from ingest.entrypoints.http import create_app
from ingest.runtime import IngestService
from ingest.service import WeighStations
from ingest.settings import Settings
from melon_contracts.events import LotGraded, LotWeighed, ScaleReading
from melon_contracts.topics import INGEST_LEDGER, LOTS_GRADED, LOTS_WEIGHED


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


class Hall:
    """The service with its clock, publisher and a hand on each scale."""

    def __init__(self, publisher: LoopbackPublisher | None = None) -> None:
        self.clock = Clock()
        self.publisher = publisher or LoopbackPublisher()
        self.service = build_in_memory(publisher=self.publisher, clock=self.clock)
        self._seq = 0

    def readings(
        self, station: str, grams: int | None, seconds: float = 1.5, **flags: bool
    ) -> None:
        """The indicator sends ``grams`` ten times a second for ``seconds``."""
        for _ in range(int(seconds * 10)):
            self.clock.now += 0.1
            self._seq += 1
            self.service.stations.observe(
                ScaleReading(
                    correlation_id=station,
                    station_id=station,
                    reading_id=f"{station}:test:{self._seq}",
                    protocol="mt-sics",
                    value_g=grams,
                    indicator_stable=True,
                    raw="S S",
                    occurred_at=datetime.fromtimestamp(self.clock.now, UTC),
                    **flags,
                )
            )

    def settle(self, station: str, grams: int) -> None:
        """Empty the scale, then put ``grams`` on it and let it settle."""
        self.readings(station, 0)
        self.readings(station, grams)

    def on(self, topic: str) -> list[Any]:
        return [message for name, _, message in self.publisher.sent if name == topic]


def lot(**changes: Any) -> dict[str, Any]:
    body = {
        "lot_id": "MQ-0001",
        "farmer_id": "F-7",
        "village_group": "红沙梁3组",
        "variety": "xizhoumi",
        "harvest_date": "2026-08-12",
        "crates": 20,
        "crate_type": "plastic-crate",
        "sample": {"brix": [14.2, 14.6, 14.9], "fruit_weights_g": [2600, 2450, 2300]},
        "operator_id": "op-3",
    }
    return {**body, **changes}


@pytest.fixture
def hall() -> Hall:
    return Hall()


@pytest.fixture
def client(hall: Hall) -> Iterator[TestClient]:
    hall.service.start_in_line()
    with TestClient(create_app(hall.service)) as client:
        yield client


def weigh(client: TestClient, hall: Hall, grams: int, station: str = "ws-1", **changes: Any) -> Any:
    hall.settle(station, grams)
    return client.post(f"/stations/{station}/weighings", json=lot(**changes))


def test_a_stable_load_becomes_a_ticketed_lot_with_its_tare(client: TestClient, hall: Hall) -> None:
    response = weigh(client, hall, 332_000)
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert (ticket["station_id"], ticket["ticket_no"], ticket["repeated"]) == ("ws-1", 1, False)
    assert (ticket["gross_kg"], ticket["tare_kg"], ticket["net_kg"]) == ("332.0", "32.0", "300.0")
    [event] = hall.on(LOTS_WEIGHED.name)
    assert isinstance(event, LotWeighed)
    assert (event.gross_g, event.tare_g, event.net_g, event.ticket_no) == (
        332_000,
        32_000,
        300_000,
        1,
    )
    assert event.ledger_seq == ticket["ledger_seq"]
    assert event.sample.fruit_weights_g == (2600, 2450, 2300)


def test_a_repeated_scan_returns_the_existing_ticket_and_publishes_nothing(
    client: TestClient, hall: Hall
) -> None:
    first = weigh(client, hall, 332_000).json()
    again = client.post("/stations/ws-1/weighings", json=lot(crates=21))
    assert again.status_code == 200
    assert again.json()["ticket_no"] == first["ticket_no"] and again.json()["repeated"]
    assert len(hall.on(LOTS_WEIGHED.name)) == 1


def test_ticket_numbers_run_without_gaps_per_station(client: TestClient, hall: Hall) -> None:
    numbers = []
    for index, station in enumerate(["ws-1", "ws-1", "ws-2", "ws-1", "ws-2"]):
        response = weigh(client, hall, 100_000 + index * 1_000, station, lot_id=f"MQ-{index}")
        assert response.status_code == 201, response.text
        numbers.append((station, response.json()["ticket_no"]))
    assert numbers == [("ws-1", 1), ("ws-1", 2), ("ws-2", 1), ("ws-1", 3), ("ws-2", 2)]


@pytest.mark.parametrize(
    ("prepare", "code"),
    [
        (lambda h: h.readings("ws-1", 200_000, seconds=0.4), "unstable"),
        (lambda h: h.readings("ws-1", None, overload=True), "overload"),
        (lambda h: h.readings("ws-1", 1_200_000), "overload"),
        (lambda h: h.readings("ws-1", 2_000), "below_minimum"),
        (lambda h: h.readings("ws-1", -5_000), "negative"),
        (lambda h: (h.readings("ws-1", 1_000), h.readings("ws-1", 300_000)), "zero_drift"),
    ],
    ids=["moving", "indicator-overload", "above-max", "below-min", "negative", "zero-drift"],
)
def test_the_scale_refuses_with_a_reason(
    client: TestClient, hall: Hall, prepare: Any, code: str
) -> None:
    hall.readings("ws-1", 0)
    prepare(hall)
    response = client.post("/stations/ws-1/weighings", json=lot())
    assert response.status_code == 409, response.text
    assert response.json()["error"] == code
    assert hall.on(LOTS_WEIGHED.name) == []


def test_one_load_is_one_weighing_until_the_scale_returns_to_zero(
    client: TestClient, hall: Hall
) -> None:
    assert weigh(client, hall, 332_000).status_code == 201
    hall.readings("ws-1", 332_000)
    second = client.post("/stations/ws-1/weighings", json=lot(lot_id="MQ-0002"))
    assert (second.status_code, second.json()["error"]) == (409, "not_returned_to_zero")
    assert weigh(client, hall, 332_000, lot_id="MQ-0002").status_code == 201


@pytest.mark.parametrize(
    ("url", "body", "status", "code"),
    [
        ("/stations/ws-9/weighings", lot(), 404, "unknown_station"),
        ("/stations/ts-1/weighings", lot(), 409, "wrong_station_kind"),
        ("/stations/ws-1/weighings", lot(variety="durian"), 422, "unknown_variety"),
        ("/stations/ws-1/weighings", lot(crate_type="sack"), 422, "invalid_lot"),
        ("/stations/ws-1/weighings", lot(crates=0), 422, "invalid_lot"),
        ("/stations/ws-1/weighings", lot(sample={"brix": [36.0]}), 422, "invalid_lot"),
        ("/stations/ws-1/weighings", lot(sample={"brix": []}), 422, "invalid_request"),
        ("/stations/ws-1/weighings", lot(sample={"brix": [12.0], "defects": {"x": 1}}), 422, None),
        ("/stations/ws-1/weighings", lot(lot_id="bad tag"), 422, "invalid_request"),
    ],
    ids=[
        "unknown-station",
        "truck-scale",
        "unknown-variety",
        "unknown-crate",
        "no-crates",
        "brix-36",
        "no-brix",
        "unknown-defect",
        "bad-tag",
    ],
)
def test_bad_requests_get_a_clear_4xx(
    client: TestClient, hall: Hall, url: str, body: dict[str, Any], status: int, code: str | None
) -> None:
    hall.settle("ws-1", 332_000)
    response = client.post(url, json=body)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"] == code
    assert response.json()["detail"]
    assert hall.on(LOTS_WEIGHED.name) == []


def test_nan_brix_is_refused(client: TestClient, hall: Hall) -> None:
    hall.settle("ws-1", 332_000)
    raw = '{"lot_id": "MQ-1", "farmer_id": "F", "variety": "xizhoumi", "crates": 2, '
    raw += '"crate_type": "carton", "sample": {"brix": [NaN]}, "operator_id": "op"}'
    response = client.post(
        "/stations/ws-1/weighings", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_an_unreachable_broker_takes_nothing_and_the_load_can_be_weighed_after(
    client: TestClient, hall: Hall
) -> None:
    hall.settle("ws-1", 332_000)
    hall.publisher.unreachable = True
    refused = client.post("/stations/ws-1/weighings", json=lot())
    assert (refused.status_code, refused.json()["error"]) == (503, "broker_unavailable")
    hall.publisher.unreachable = False
    assert client.post("/stations/ws-1/weighings", json=lot()).status_code == 201


def test_the_grader_grades_under_the_profile_of_the_weighing(
    client: TestClient, hall: Hall
) -> None:
    weigh(client, hall, 332_000)
    [weighed] = hall.on(LOTS_WEIGHED.name)
    graded = hall.service.stations.grade(weighed)
    assert isinstance(graded, LotGraded) and graded.grade == "extra"
    assert hall.service.stations.grade(weighed) is None  # once
    view = client.get("/lots/MQ-0001").json()
    assert view["status"] == "graded" and view["grade"]["grade_zh"] == "特级"
    assert view["grade"]["profile_id"] == "minqin-honeydew" and view["grade"]["reason"]
    assert len(hall.on(LOTS_GRADED.name)) == 1


def test_the_first_print_is_the_original_and_reprints_say_copy(
    client: TestClient, hall: Hall
) -> None:
    weigh(client, hall, 332_000)
    first = client.post("/stations/ws-1/tickets/1/prints", json={"operator_id": "op-3"}).json()
    second = client.post("/stations/ws-1/tickets/1/prints", json={"operator_id": "op-3"}).json()
    assert (first["print_no"], first["copy"], second["print_no"], second["copy"]) == (
        1,
        False,
        2,
        True,
    )
    original = client.get(first["url"]).text
    copy = client.get(second["url"]).text
    assert "原件" in original and "副本" not in original
    assert "副本" in copy and "332.0" in copy
    assert client.get("/stations/ws-1/tickets/1/prints/3").status_code == 404
    assert client.get("/stations/ws-1/tickets/2").status_code == 404


def test_a_correction_is_a_new_record_and_weights_are_not_correctable(
    client: TestClient, hall: Hall
) -> None:
    weigh(client, hall, 332_000)
    fixed = client.post(
        "/lots/MQ-0001/corrections",
        json={
            "changes": {"farmer_id": "F-8"},
            "reason": "wrong household card",
            "operator_id": "a",
        },
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["farmer_id"] == "F-8"
    assert fixed.json()["corrections"][0]["reason"] == "wrong household card"
    weight = client.post(
        "/lots/MQ-0001/corrections",
        json={"changes": {"net_g": 1}, "reason": "x", "operator_id": "a"},
    )
    assert weight.status_code == 422 and "weighing the lot again" in weight.json()["detail"]
    kinds = [record.kind for record in hall.on(INGEST_LEDGER.name)]
    assert kinds.count("lot_weighed") == 1 and kinds.count("lot_corrected") == 1


def test_tare_changes_are_audited_and_used(client: TestClient, hall: Hall) -> None:
    changed = client.put("/crate-tares/carton", json={"tare_kg": "0.7", "operator_id": "admin"})
    assert changed.status_code == 200, changed.text
    ticket = weigh(client, hall, 100_000, crates=10, crate_type="carton").json()
    assert ticket["tare_g"] == 7_000
    for bad in ["-1", "0", "0.0001", "NaN"]:
        response = client.put("/crate-tares/carton", json={"tare_kg": bad, "operator_id": "a"})
        assert response.status_code == 422, (bad, response.text)
    [record] = [
        r
        for r in hall.on(INGEST_LEDGER.name)
        if r.kind == "crate_tare_set" and r.body["tare_g"] == 700
    ]
    assert (record.actor, record.body["previous_g"]) == ("admin", 600)


def test_a_truck_weighs_in_and_out_and_then_once_with_its_stored_tare(
    client: TestClient, hall: Hall
) -> None:
    truck = {**lot(lot_id="MQ-T1", crates=120), "plate": "甘h12345"}
    hall.settle("ts-1", 18_460_000)
    weigh_in = client.post("/stations/ts-1/weigh-ins", json=truck)
    assert weigh_in.status_code == 202, weigh_in.text
    assert weigh_in.json()["plate"] == "甘H12345"
    hall.settle("ts-1", 6_240_000)
    out = {"plate": "甘H12345", "operator_id": "op-3", "store_tare": True}
    weigh_out = client.post("/stations/ts-1/weigh-outs", json=out)
    assert weigh_out.status_code == 201, weigh_out.text
    assert (weigh_out.json()["net_g"], weigh_out.json()["net_kg"]) == (12_220_000, "12220")

    hall.settle("ts-1", 16_240_000)
    again = {**truck, "lot_id": "MQ-T2", "use_stored_tare": True}
    one_pass = client.post("/stations/ts-1/weigh-ins", json=again)
    assert one_pass.status_code == 201, one_pass.text
    assert (one_pass.json()["tare_g"], one_pass.json()["net_g"]) == (6_240_000, 10_000_000)
    hall.settle("ts-1", 6_000_000)
    no_open = client.post("/stations/ts-1/weigh-outs", json=out)
    assert no_open.status_code == 404


def test_a_restart_rebuilds_lots_tickets_and_parameters_from_the_audit_trail(
    client: TestClient, hall: Hall
) -> None:
    weigh(client, hall, 332_000)
    client.put("/crate-tares/carton", json={"tare_kg": "0.7", "operator_id": "admin"})
    weigh(client, hall, 100_000, lot_id="MQ-0002")

    restarted = Hall(publisher=hall.publisher)
    restarted.service.start_in_line()
    with TestClient(create_app(restarted.service)) as again:
        assert again.get("/lots/MQ-0002").json()["ticket_no"] == 2
        assert again.get("/crate-tares").json()["carton"]["tare_g"] == 700
        restarted.settle("ws-1", 120_000)
        third = again.post("/stations/ws-1/weighings", json=lot(lot_id="MQ-0003"))
        assert third.status_code == 201 and third.json()["ticket_no"] == 3
    # Defaults were recorded once, at the first start, not again at the restart
    kinds = [r.kind for r in hall.on(INGEST_LEDGER.name)]
    assert kinds.count("grading_profile_activated") == 1


def test_a_restart_on_a_damaged_trail_weighs_on_past_the_damage_and_says_so(
    client: TestClient, hall: Hall
) -> None:
    # Given ticket 1 of ws-1 on the trail
    assert weigh(client, hall, 332_000).json()["ticket_no"] == 1
    log = hall.publisher.log
    # When a value that is not JSON and a forged weighing (ticket 2, its seal stale) land on it
    genuine = json.loads(log[-1])
    forged = {**genuine, "seq": genuine["seq"] + 1, "correlation_id": "MQ-FORGED"}
    forged["body"] = {**genuine["body"], "ticket_no": 2, "net_g": 1}
    garbage_at = len(log)
    log.extend([b"\xff not json", json.dumps(forged).encode()])

    restarted = Hall(publisher=hall.publisher)
    restarted.service.start_in_line()
    with TestClient(create_app(restarted.service)) as again:
        # Then weighing goes on, with the ticket after the one the forgery claims
        restarted.settle("ws-1", 120_000)
        next_lot = again.post("/stations/ws-1/weighings", json=lot(lot_id="MQ-0002"))
        assert next_lot.status_code == 201, next_lot.text
        assert next_lot.json()["ticket_no"] == 3
        void = again.get("/stations/ws-1/tickets/2")
        assert void.status_code == 404 and "is void" in void.json()["detail"]
        assert again.get("/lots/MQ-FORGED").status_code == 404
        # And health is degraded but ready, naming each damaged record
        health = again.get("/healthz")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and "audit trail damaged" in body["degraded"]["ledger"]
        assert [(d["offset"], d["damage"]) for d in body["ledger_damage"]] == [
            (garbage_at, "unreadable"),
            (garbage_at + 1, "altered"),
        ]
        assert {d["acknowledged_by_seq"] for d in body["ledger_damage"]} == {forged["seq"] + 1}
        assert REGISTRY.get_sample_value("melon_ingest_ledger_damaged_records") == 2
    letters = [m for name, _, m in hall.publisher.sent if name == INGEST_LEDGER.dlq]
    assert [letter.offset for letter in letters] == [garbage_at, garbage_at + 1]


def test_a_new_profile_version_is_activated_and_a_changed_old_one_refused(
    client: TestClient, hall: Hall
) -> None:
    profile = hall.service.stations.house.profile().to_dict()
    newer = {**profile, "version": 2}
    assert (
        client.post("/grading-profiles", json={"profile": newer, "operator_id": "a"}).status_code
        == 201
    )
    active = client.get("/grading-profiles").json()["active"]
    assert (active["profile_id"], active["version"]) == ("minqin-honeydew", 2)
    assert "rot" in [kind["kind"] for kind in active["defect_kinds"]]
    changed = {**profile, "description": "edited in place"}
    refused = client.post("/grading-profiles", json={"profile": changed, "operator_id": "a"})
    assert refused.status_code == 422 and "new version" in refused.json()["detail"]
    broken = client.post("/grading-profiles", json={"profile": {"x": 1}, "operator_id": "a"})
    assert broken.status_code == 422


def test_metrics_count_weighings_and_refusals(client: TestClient, hall: Hall) -> None:
    timed = ("melon_ingest_weighing_seconds_count", "melon_ingest_ledger_append_seconds_count")
    before = [REGISTRY.get_sample_value(name) or 0.0 for name in timed]
    weigh(client, hall, 332_000)
    assert [REGISTRY.get_sample_value(name) for name in timed] == [n + 1 for n in before]
    hall.readings("ws-1", 0)
    hall.readings("ws-1", 200_000, seconds=0.3)
    client.post("/stations/ws-1/weighings", json=lot(lot_id="MQ-0009"))
    client.post("/stations/ws-1/weighings", json=lot(lot_id="bad tag"))
    text = client.get("/metrics").text
    assert 'melon_ingest_rejected_inputs_total{reason="invalid_request"}' in text
    assert 'melon_ingest_lots_weighed_total{mode="crates",station="ws-1"}' in text
    assert 'melon_ingest_rejected_inputs_total{reason="unstable"}' in text
    assert 'melon_ingest_scale_readings_total{station="ws-1"}' in text
    assert "melon_ingest_time_to_stable_seconds_bucket" in text


def test_health_is_ok_once_the_trail_is_loaded(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_writes_are_refused_until_the_audit_trail_is_loaded() -> None:
    def unreachable(start: int) -> Iterator[tuple[int, bytes | None]]:
        raise ConnectionError("no broker at 127.0.0.1:9")
        yield  # a generator, like the real source

    stations = WeighStations(
        LoopbackPublisher(),
        unreachable,
        station_setups(Settings()),
        DEFAULT_CRATE_TARES,
        default_profile(),
    )
    with TestClient(create_app(IngestService(stations=stations))) as client:
        response = client.post("/stations/ws-1/weighings", json=lot())
        assert (response.status_code, response.json()["error"]) == (503, "not_ready")
        health = client.get("/healthz")
        assert health.status_code == 503 and "ledger" in health.json()["waiting"]


def test_a_reading_delivered_twice_is_applied_once(hall: Hall) -> None:
    hall.service.start_in_line()
    stations = hall.service.stations
    hall.readings("ws-1", 0)
    version = stations.live("ws-1").version
    hall.clock.now += 0.1
    reading = ScaleReading(
        correlation_id="ws-1",
        station_id="ws-1",
        reading_id="ws-1:s2:1",
        protocol="xk3190",
        value_g=0,
        indicator_stable=False,
        raw="<STX>+0000000xx<ETX>",
        occurred_at=datetime.fromtimestamp(hall.clock.now, UTC),
    )
    stations.observe(reading)
    stations.observe(reading)
    assert stations.live("ws-1").version == version + 1


def test_the_relay_does_not_publish_a_weighing_its_request_is_publishing(hall: Hall) -> None:
    # Given a broker slow to acknowledge, and the relay thread running meanwhile
    hall.service.start_in_line()
    stations = hall.service.stations
    publish = hall.publisher.publish
    relays: list[threading.Thread] = []
    relayed: list[int] = []

    def slow_publish(spec: Any, key: str, message: Any) -> None:
        if spec.name == LOTS_WEIGHED.name and not relays:
            relay = threading.Thread(target=lambda: relayed.append(stations.relay()))
            relays.append(relay)
            relay.start()
            relay.join(timeout=0.3)  # the relay runs while this publish waits for its ack
        publish(spec, key, message)

    hall.publisher.publish = slow_publish  # type: ignore[method-assign]
    with TestClient(create_app(hall.service)) as client:
        assert weigh(client, hall, 332_000).status_code == 201
    relays[0].join(timeout=5)
    # Then the weighing went out once, and the relay found nothing to do
    assert len(hall.on(LOTS_WEIGHED.name)) == 1 and relayed == [0]


def test_a_station_is_not_held_up_while_another_weighings_event_waits_for_its_ack(
    hall: Hall,
) -> None:
    # Given ws-1's LotWeighed stuck at the broker until ws-2's weighing is done
    hall.service.start_in_line()
    hall.settle("ws-1", 332_000)
    publish = hall.publisher.publish
    second_done = threading.Event()
    answers: dict[str, int] = {}

    with TestClient(create_app(hall.service)) as client:

        def second() -> None:
            hall.settle("ws-2", 232_000)
            response = client.post("/stations/ws-2/weighings", json=lot(lot_id="MQ-0002"))
            answers["ws-2"] = response.status_code
            second_done.set()

        def held_publish(spec: Any, key: str, message: Any) -> None:
            if spec.name == LOTS_WEIGHED.name and key == "MQ-0001":
                threading.Thread(target=second).start()
                second_done.wait(timeout=10)
            publish(spec, key, message)

        hall.publisher.publish = held_publish  # type: ignore[method-assign]
        answers["ws-1"] = client.post("/stations/ws-1/weighings", json=lot()).status_code
    # Then ws-2 was ticketed while ws-1's event was still on its way, and both went out
    assert second_done.is_set() and answers == {"ws-1": 201, "ws-2": 201}
    keys = [message.lot_id for message in hall.on(LOTS_WEIGHED.name)]
    assert keys == ["MQ-0002", "MQ-0001"]
