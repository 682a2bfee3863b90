"""A damaged audit trail through the real broker: the weigh stations fence the damage off.

Records that are not ingest's land on ``ingest.ledger`` (a value that is not JSON, and a forged
weighing whose content does not match its seal). After a restart the weigh stations still weigh,
the damage is reported on ``ingest.ledger.dlq``, on ``/healthz``, in the metrics and by
``melon-ingest audit verify``, and the trail itself carries a sealed record that acknowledges the
break, so the chain stays verifiable past it.

The damage stays on the topic for good, so this module runs on a broker and hall of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from ingest.ledger import kafka_source
from melon_contracts.admin import ensure_topics
from melon_contracts.events import DeadLettered, LedgerRecord, LotWeighed
from melon_contracts.topics import INGEST_LEDGER, LOTS_WEIGHED, by_name
from melon_devkit.hall import Hall, Ports
from melon_devkit.kafka import Broker, free_port
from melon_devkit.trace import read_topic
from melon_devkit.weigh import wait_scale

from .conftest import eventually, weigh

pytestmark = pytest.mark.e2e

INGEST_ONLY = ["scales", "gateway", "ingest"]
AUDIT = [sys.executable, "-m", "ingest", "audit"]


@pytest.fixture(scope="module")
def own_hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Hall]]:
    """A broker and the weigh stations (scales, gateway, ingest) whose trail this module damages."""
    broker = Broker(
        home=tmp_path_factory.mktemp("kafka-damaged"), port=free_port(), controller_port=free_port()
    )
    broker.start()
    hall = Hall(
        bootstrap=broker.bootstrap, home=tmp_path_factory.mktemp("hall-damaged"), ports=Ports.free()
    )
    try:
        ensure_topics(broker.bootstrap)
        start_ingest(hall, INGEST_ONLY)
        yield broker, hall
    finally:
        hall.stop()
        broker.stop()


def start_ingest(hall: Hall, names: list[str]) -> None:
    """Start services and wait until ingest sees ws-1 empty: after a start, a scale must have
    been empty before the first weighing (a load may be one weighed before a crash)."""
    hall.start(names, timeout_s=60)
    with httpx.Client(timeout=20) as http:
        wait_scale(http, hall.url("ingest"), "ws-1", "empty")


def append_raw(broker: Broker, value: bytes, key: bytes = b"lot_weighed") -> int:
    """Write a record onto the trail as a foreign writer would; its offset."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        return int(producer.send(INGEST_LEDGER.name, key=key, value=value).get(timeout=30).offset)
    finally:
        producer.close()


def trail(broker: Broker) -> list[tuple[int, bytes | None]]:
    return list(kafka_source(broker.bootstrap)(0))


def readable(value: bytes | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value or b"")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def test_a_damaged_trail_is_fenced_off_reported_and_weighing_goes_on(
    own_hall: tuple[Broker, Hall], tmp_path: Path
) -> None:
    broker, hall = own_hall
    ingest = hall.url("ingest")

    # Given a lot weighed at ws-1
    weigh(hall, "DMG-1", [12.4, 12.8], gross_kg="96.0", crates=10)
    # When a record that is not JSON lands on the trail while ingest runs
    garbage_offset = append_raw(broker, b"\x00\x9f{not json", key=b"?")
    # And ingest weighs on (its record chains onto its own head, past the garbage)
    second = weigh(hall, "DMG-2", [12.1, 12.5], gross_kg="88.0", crates=10)
    # And a forged weighing lands: a copy of the last one claiming the next seq and ticket, with
    # another lot and net weight, and the seal it was copied with
    ledger = [readable(value) for _, value in trail(broker)]
    last = ledger[-1]
    assert last is not None
    weighed_last = next(r for r in reversed(ledger) if r and r["kind"] == "lot_weighed")
    forged = json.loads(json.dumps(weighed_last))
    forged["seq"] = last["seq"] + 1
    forged["prev_hash"] = last["hash"]
    forged["correlation_id"] = "DMG-FORGED"
    forged["body"]["ticket_no"] = second["ticket_no"] + 1
    forged["body"]["net_g"] += 50_000
    forged["body"]["lot"]["lot_id"] = "DMG-FORGED"
    forged_offset = append_raw(broker, json.dumps(forged).encode())
    # And ingest is restarted, so that it rebuilds its state from the damaged trail
    hall.services["ingest"].stop()
    start_ingest(hall, ["ingest"])

    # Then weighing goes on, with a ticket number that no record on the trail claims: the one the
    # forged record claimed may have been printed, so it is void, never issued again
    third = weigh(hall, "DMG-3", [13.0, 12.6], gross_kg="104.0", crates=10)
    assert third["ticket_no"] == second["ticket_no"] + 2, (second, third)
    assert third["ticket_no"] != forged["body"]["ticket_no"]
    [(_, weighed)] = eventually(
        lambda: [(k, m) for k, m in read_topic(broker.bootstrap, LOTS_WEIGHED) if k == "DMG-3"]
    )
    assert isinstance(weighed, LotWeighed) and weighed.ledger_seq == third["ledger_seq"]
    with httpx.Client(timeout=20) as http:
        void = http.get(f"{ingest}/stations/ws-1/tickets/{forged['body']['ticket_no']}")
        assert void.status_code == 404 and "void" in void.json()["detail"], void.text
        # And the forged lot is not a lot of the weigh house
        assert http.get(f"{ingest}/lots/DMG-FORGED").status_code == 404

        # And health says the trail is damaged, naming each fenced record, but ready
        health = http.get(f"{ingest}/healthz")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "degraded", body
        assert "audit trail damaged" in body["degraded"]["ledger"]
        damage = {d["offset"]: d for d in body["ledger_damage"]}
        assert set(damage) == {garbage_offset, forged_offset}, body
        assert damage[garbage_offset]["damage"] == "unreadable"
        assert damage[forged_offset]["damage"] == "altered"

        # And the metrics count the fenced records
        metrics = http.get(f"{ingest}/metrics").text
        assert "melon_ingest_ledger_damaged_records 2.0" in metrics, metrics
        head = http.get(f"{ingest}/audit/head").json()

    # And the trail itself carries the acknowledgement: a sealed record that points at the
    # damaged offsets and at the last good seal, and voids the seq and ticket the forgery claimed
    records = {offset: readable(value) for offset, value in trail(broker)}
    [(break_offset, ack)] = [
        (offset, r) for offset, r in records.items() if r and r.get("kind") == "trail_break"
    ]
    assert break_offset > forged_offset
    assert [d["offset"] for d in ack["body"]["damaged"]] == [garbage_offset, forged_offset]
    assert ack["body"]["last_good_seq"] == last["seq"]
    assert ack["prev_hash"] == ack["body"]["last_good_hash"] == last["hash"]
    assert ack["body"]["void_seqs"] == {"first": forged["seq"], "last": forged["seq"]}
    assert ack["body"]["void_tickets"] == [
        {
            "station_id": "ws-1",
            "first": forged["body"]["ticket_no"],
            "last": forged["body"]["ticket_no"],
        }
    ]
    assert ack["seq"] == forged["seq"] + 1
    assert LedgerRecord.model_validate(ack).seq == third["ledger_seq"] - 1
    # And no sequence number is used twice by the records the chain holds
    chained = [
        r["seq"]
        for offset, r in records.items()
        if r is not None and offset not in (garbage_offset, forged_offset)
    ]
    assert chained == sorted(set(chained)) and forged["seq"] not in chained

    # And each fenced record is on the dead-letter topic with its offset and reason
    letters = [
        m
        for _, m in read_topic(broker.bootstrap, by_name(INGEST_LEDGER.dlq))
        if isinstance(m, DeadLettered)
    ]
    by_offset = {letter.offset: letter for letter in letters}
    assert set(by_offset) == {garbage_offset, forged_offset}
    assert by_offset[garbage_offset].reason.startswith("unreadable")
    assert by_offset[forged_offset].reason.startswith("altered")
    assert "DMG-FORGED" in by_offset[forged_offset].payload

    # And verify names both damaged records, says the trail acknowledged them, and checks the
    # chain past them; it still exits 1, since a damaged legal record is to be investigated
    verified = subprocess.run(
        [*AUDIT, "verify", "--bootstrap", broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 1, verified.stdout + verified.stderr
    out = verified.stdout
    assert f"offset {garbage_offset}" in out and f"offset {forged_offset}" in out, out
    assert "unreadable" in out and "altered" in out, out
    assert out.count(f"acknowledged by seq {ack['seq']}") == 2, out
    assert f"checks out through seq {head['seq']}" in out, out

    # And an exported copy of the trail verifies to the same verdict from its file
    export = tmp_path / "ledger.jsonl"
    exported = subprocess.run(
        [*AUDIT, "export", str(export), "--bootstrap", broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    from_file = subprocess.run(
        [*AUDIT, "verify", "--file", str(export)], capture_output=True, text=True, timeout=60
    )
    assert (from_file.returncode, from_file.stdout) == (1, out)
