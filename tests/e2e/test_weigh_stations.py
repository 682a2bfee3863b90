"""Weigh stations through the real broker: scale simulator -> gateway -> ingest -> topics.

The simulator speaks MT-SICS (ws-1) and the XK3190 frame (ws-2, ts-1) over TCP; the gateway is a
separate process that decodes the frames onto ``scale.readings``; the ingest service decides
stability from that stream, keeps its audit trail on ``ingest.ledger`` and publishes weighings and
grades. Everything is read back with plain Kafka consumers and the ``melon-ingest audit`` CLI.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from ingest.domain.grading import PROFILES_DIR
from melon_contracts.events import LedgerRecord, LotGraded, LotWeighed, ScaleReading
from melon_contracts.topics import INGEST_LEDGER, LOTS_GRADED, LOTS_WEIGHED, SCALE_READINGS
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from melon_devkit.trace import read_topic
from melon_devkit.weigh import WeighingFailed, load, unload, wait_scale

from .conftest import eventually, lot_body, weigh

pytestmark = pytest.mark.e2e


AUDIT = [sys.executable, "-m", "ingest", "audit"]
PROFILES = [sys.executable, "-m", "ingest", "profiles"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def audit(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDIT, *args, "--bootstrap", broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_readings_flow_from_both_wire_formats_to_a_ticketed_graded_lot(
    broker: Broker, hall: Hall
) -> None:
    # Given lots on ws-1 (MT-SICS) and ws-2 (XK3190)
    first, second = new_id("MQ"), new_id("MQ")
    ticket_1 = weigh(hall, first, [14.2, 14.6, 14.9], gross_kg="332.0", crates=20)
    ticket_2 = weigh(hall, second, [12.1, 12.4, 12.9], gross_kg="200.0", crates=10, station="ws-2")

    # Then each ticket holds the stable gross, the crate tare and the net
    assert (ticket_1["gross_g"], ticket_1["tare_g"], ticket_1["net_g"]) == (
        332_000,
        32_000,
        300_000,
    )
    assert (ticket_2["gross_g"], ticket_2["tare_g"], ticket_2["net_g"]) == (
        200_000,
        16_000,
        184_000,
    )

    # And the readings of both stations are on scale.readings, keyed by station
    readings = read_topic(broker.bootstrap, SCALE_READINGS)
    by_station = Counter(key for key, message in readings if isinstance(message, ScaleReading))
    assert by_station["ws-1"] > 10 and by_station["ws-2"] > 10
    protocols = {m.station_id: m.protocol for _, m in readings if isinstance(m, ScaleReading)}
    assert (protocols["ws-1"], protocols["ws-2"]) == ("mt-sics", "xk3190")

    # And the weighing and its grade are on their topics with the measurements behind them
    [(_, weighed)] = eventually(lambda: _about(broker, LOTS_WEIGHED, first))
    assert isinstance(weighed, LotWeighed)
    assert (weighed.mode, weighed.crate_type, weighed.division_g) == (
        "crates",
        "plastic-crate",
        200,
    )
    assert weighed.ticket_no == ticket_1["ticket_no"]
    [(_, graded)] = eventually(lambda: _about(broker, LOTS_GRADED, first))
    assert isinstance(graded, LotGraded)
    assert (graded.grade, graded.profile_id, graded.profile_version) == (
        "extra",
        "minqin-honeydew",
        1,
    )
    assert graded.brix_mean == 14.6 and graded.size_code is not None and graded.reason
    [(_, graded_2)] = eventually(lambda: _about(broker, LOTS_GRADED, second))
    assert isinstance(graded_2, LotGraded) and graded_2.grade == "class_i"

    # And the weighing is in the audit trail, chained
    ledger = [m for _, m in read_topic(broker.bootstrap, INGEST_LEDGER)]
    weighings = [r for r in ledger if isinstance(r, LedgerRecord) and r.kind == "lot_weighed"]
    record = next(r for r in weighings if r.correlation_id == first)
    assert record.seq == weighed.ledger_seq and record.body["net_g"] == 300_000


def test_a_repeated_scan_returns_the_ticket_and_an_unsettled_scale_is_refused(
    hall: Hall,
) -> None:
    lot_id = new_id("MQ")
    ticket = weigh(hall, lot_id, [12.5, 12.6])
    with httpx.Client(timeout=20) as http:
        again = http.post(
            f"{hall.url('ingest')}/stations/ws-1/weighings", json=lot_body(lot_id, [12.5, 12.6])
        )
        assert again.status_code == 200
        assert again.json()["ticket_no"] == ticket["ticket_no"] and again.json()["repeated"]

        # A load just put on the scale is still moving: no weighing, a reason instead
        load(http, hall.url("scales"), "ws-1", "420.0")
        try:
            refused = http.post(
                f"{hall.url('ingest')}/stations/ws-1/weighings",
                json=lot_body(new_id("MQ"), [12.0]),
            )
        finally:
            unload(http, hall.url("scales"), "ws-1")
            wait_scale(http, hall.url("ingest"), "ws-1", "empty")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] in {"unstable", "below_minimum"}


def test_a_truck_is_weighed_in_loaded_and_out_empty(broker: Broker, hall: Hall) -> None:
    lot_id, plate = new_id("MQ"), f"甘H{uuid.uuid4().hex[:5].upper()}"
    ingest, scales = hall.url("ingest"), hall.url("scales")
    body = {**lot_body(lot_id, [13.0, 12.6, 12.9], crates=120), "plate": plate}
    with httpx.Client(timeout=20) as http:
        load(http, scales, "ts-1", "18460")
        wait_scale(http, ingest, "ts-1", "stable")
        weigh_in = http.post(f"{ingest}/stations/ts-1/weigh-ins", json=body)
        assert weigh_in.status_code == 202, weigh_in.text
        assert weigh_in.json()["gross_kg"] == "18460"
        # The truck drives off to unload and comes back empty
        unload(http, scales, "ts-1")
        wait_scale(http, ingest, "ts-1", "empty")
        load(http, scales, "ts-1", "6240")
        wait_scale(http, ingest, "ts-1", "stable")
        weigh_out = http.post(
            f"{ingest}/stations/ts-1/weigh-outs",
            json={"plate": plate, "operator_id": "op-9", "store_tare": True},
        )
        unload(http, scales, "ts-1")
    assert weigh_out.status_code == 201, weigh_out.text
    ticket = weigh_out.json()
    assert (ticket["gross_g"], ticket["tare_g"], ticket["net_g"]) == (
        18_460_000,
        6_240_000,
        12_220_000,
    )
    [(_, weighed)] = eventually(lambda: _about(broker, LOTS_WEIGHED, lot_id))
    assert isinstance(weighed, LotWeighed) and weighed.mode == "vehicle"
    assert weighed.plate == plate.upper()


def test_malformed_frames_are_counted_and_the_gateway_carries_on(hall: Hall) -> None:
    with httpx.Client(timeout=20) as http:
        before = _malformed(http, hall)
        http.post(
            f"{hall.url('scales')}/scales/ws-2/garbage", json={"frames": 5}
        ).raise_for_status()
        eventually(lambda: _malformed(http, hall) >= before + 5)
    # The gateway still delivers: a lot on ws-2 is weighed from its readings
    weigh(hall, new_id("MQ"), [12.2], gross_kg="100.0", crates=10, station="ws-2")


def test_a_killed_ingest_loses_no_lot_doubles_none_and_keeps_tickets_gapless(
    broker: Broker, hall: Hall
) -> None:
    lot_ids = [new_id("KILL") for _ in range(6)]
    done: list[str] = []
    errors: list[str] = []

    def weigh_all() -> None:
        for index, lot_id in enumerate(lot_ids):
            for _ in range(40):  # the scan is repeated until the service answers again
                try:
                    weigh(hall, lot_id, [12.8, 13.0], gross_kg=f"{100 + index * 10}.0", crates=10)
                    done.append(lot_id)
                    break
                except (httpx.HTTPError, WeighingFailed, ValueError):
                    threading.Event().wait(0.5)
            else:
                errors.append(lot_id)

    # Given an operator weighing lot after lot
    worker = threading.Thread(target=weigh_all)
    worker.start()
    eventually(lambda: len(done) >= 2, timeout_s=60)

    # When the ingest process is killed without warning mid-stream and started again
    ingest = hall.services["ingest"]
    ingest.signal(signal.SIGKILL)
    assert ingest.process is not None
    ingest.process.wait(timeout=10)
    hall.start(["ingest"])
    worker.join(timeout=180)
    assert not worker.is_alive() and not errors, errors

    # Then every lot is on lots.weighed with one weighing event (a record the dying process sent
    # may land again as a redelivery of the same event id, which readers dedupe), and graded once
    weighed = [m for _, m in read_topic(broker.bootstrap, LOTS_WEIGHED)]
    mine = [m for m in weighed if isinstance(m, LotWeighed) and m.lot_id in lot_ids]
    events = {(m.lot_id, m.event_id, m.ticket_no, m.ledger_seq) for m in mine}
    assert sorted(lot_id for lot_id, *_ in events) == sorted(lot_ids)
    eventually(lambda: len(_graded_ids(broker, lot_ids)) == len(lot_ids))
    assert Counter(_graded_ids(broker, lot_ids)) == Counter({lot_id: 1 for lot_id in lot_ids})

    # And the tickets of ws-1 still run 1, 2, 3 ... without a gap or a repeat
    lots_by_ticket: dict[int, set[str]] = {}
    for m in weighed:
        if isinstance(m, LotWeighed) and m.station_id == "ws-1":
            lots_by_ticket.setdefault(m.ticket_no, set()).add(m.lot_id)
    assert sorted(lots_by_ticket) == list(range(1, len(lots_by_ticket) + 1))
    assert all(len(lots) == 1 for lots in lots_by_ticket.values()), lots_by_ticket

    # And the audit trail is intact
    verified = audit(broker, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout


def test_a_cooperative_activates_a_new_profile_version_from_its_file(
    broker: Broker, hall: Hall, tmp_path: Path
) -> None:
    shipped = PROFILES_DIR / "minqin-honeydew.yaml"
    edited = tmp_path / "minqin-honeydew-v2.yaml"
    edited.write_text(
        shipped.read_text(encoding="utf-8").replace("version: 1", "version: 2", 1),
        encoding="utf-8",
    )
    activated = subprocess.run(
        [
            *PROFILES,
            "activate",
            str(edited),
            "--operator=coop-admin",
            f"--url={hall.url('ingest')}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert activated.returncode == 0, activated.stdout + activated.stderr
    assert "minqin-honeydew version 2" in activated.stdout
    lot_id = new_id("MQ")
    weigh(hall, lot_id, [12.4, 12.6], gross_kg="96.0", crates=10)
    [(_, graded)] = eventually(lambda: _about(broker, LOTS_GRADED, lot_id))
    assert isinstance(graded, LotGraded) and graded.profile_version == 2
    ledger = [m for _, m in read_topic(broker.bootstrap, INGEST_LEDGER)]
    [activation] = [
        r
        for r in ledger
        if isinstance(r, LedgerRecord)
        and r.kind == "grading_profile_activated"
        and r.actor == "coop-admin"
    ]
    assert activation.body["profile"]["version"] == 2


def test_a_tampered_audit_trail_is_caught_by_verify(
    broker: Broker, hall: Hall, tmp_path: Path
) -> None:
    # Last in the session on purpose: the forged record it appends stays on the topic.
    weigh(hall, new_id("MQ"), [12.0], gross_kg="80.0", crates=5)
    export = tmp_path / "ledger.jsonl"
    exported = subprocess.run(
        [*AUDIT, "export", str(export), "--bootstrap", broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    lines = export.read_text(encoding="utf-8").splitlines()
    clean = subprocess.run(
        [*AUDIT, "verify", "--file", str(export)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert clean.returncode == 0, clean.stdout

    # When someone changes a net weight in the exported copy
    target = next(i for i, line in enumerate(lines) if '"lot_weighed"' in line)
    record = json.loads(lines[target])
    record["body"]["net_g"] += 1000
    lines[target] = json.dumps(record, ensure_ascii=False)
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tampered = subprocess.run(
        [*AUDIT, "verify", "--file", str(export)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tampered.returncode == 1
    assert f"expected seq {record['seq']}" in tampered.stdout and "altered" in tampered.stdout

    # And when a forged record is appended to the topic itself
    forged = dict(json.loads(lines[-1]))
    forged["seq"] += 1
    forged["body"] = {"crate_type": "plastic-crate", "tare_g": 1}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(INGEST_LEDGER.name, key=b"crate_tare_set", value=json.dumps(forged).encode())
    producer.flush()
    producer.close()
    caught = audit(broker, "verify")
    assert caught.returncode == 1
    assert re.search(r"(missing|altered|broken_link|out_of_order)", caught.stdout), caught.stdout


def _about(broker: Broker, spec: Any, lot_id: str) -> list[tuple[str | None, Any]]:
    return [(k, m) for k, m in read_topic(broker.bootstrap, spec) if m.correlation_id == lot_id]


def _graded_ids(broker: Broker, lot_ids: list[str]) -> list[str]:
    return [
        m.lot_id
        for _, m in read_topic(broker.bootstrap, LOTS_GRADED)
        if isinstance(m, LotGraded) and m.lot_id in lot_ids
    ]


def _malformed(http: httpx.Client, hall: Hall) -> float:
    text = http.get(f"{hall.url('gateway')}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("melon_gateway_malformed_frames_total{") and 'station="ws-2"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
