"""Poison on every topic a service reads: each bad record is on ``<topic>.dlq`` with its fault.

The matrix comes from the registry: every topic with the services that read it, times every kind
of bad record a producer can leave there (bytes that are not JSON, JSON of the wrong shape, an
event of another topic, a record keyed for something else, no value, a key of 1000 characters,
garbage under a key of 80 digits, a value at the topic's size limit). Each record must come back
as a dead letter that names the fault, filed by each reader of its topic, and the hall must then
weigh, trade and dispatch as before and stay ready, also after its readers have replayed the
poison on a restart.

Everything here is keyed and named ``poison-<run>`` (books ``poisonmelon.*``, plates ``毒*``), so
the hall's other tests, which share it, never meet it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource

from melon_contracts.codec import encode
from melon_contracts.commands import PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import (
    BidUpdated,
    BoardUpdated,
    DeadLettered,
    LotGraded,
    LotWeighed,
    QualitySample,
    ScaleReading,
    TradeExecuted,
    TruckCheckedIn,
)
from melon_contracts.reference import Grade
from melon_contracts.topics import (
    INGEST_LEDGER,
    LOTS_GRADED,
    TOPICS,
    Service,
    TopicSpec,
    by_name,
)
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from melon_devkit.trace import read_topic

from .conftest import eventually, merchant, weigh

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]
POISON = f"poison-{RUN}"
BOOK_VARIETY, BOOK_GRADE = "poisonmelon", Grade.OUT_OF_GRADE
PLATE = f"毒X{RUN[:5].upper()}"

NOT_FILED: dict[tuple[str, Service], str] = {
    (INGEST_LEDGER.name, "ingest"): "the audit trail has a reader of its own, which fences a "
    "record it did not seal off when ingest starts, dead-letters it and answers degraded; "
    "test_audit_trail_damage puts poison there, on a hall of its own",
    (LOTS_GRADED.name, "ingest"): "ingest reads its own grades back only into its read model; "
    "the matcher is the reader that files what it cannot use of them",
}
"""Readers of the registry that do not file dead letters, and why."""

READS: list[tuple[TopicSpec, Service]] = [
    (spec, service)
    for spec in TOPICS
    for service in spec.readers
    if (spec.name, service) not in NOT_FILED
]


def samples() -> dict[str, Message]:
    """A valid value for every topic a service reads, about poison only."""
    book = f"{BOOK_VARIETY}.{BOOK_GRADE.value}"
    sample = QualitySample(brix=(12.0,))
    return {
        "scale.readings": ScaleReading(
            correlation_id=POISON,
            station_id=POISON,
            reading_id=f"{POISON}:s:1",
            protocol="mt-sics",
            value_g=0,
            indicator_stable=True,
            raw="S S 0.0 kg",
        ),
        "lots.weighed": LotWeighed(
            correlation_id=POISON,
            lot_id=POISON,
            station_id=POISON,
            ticket_no=1,
            ledger_seq=1,
            farmer_id=POISON,
            variety=BOOK_VARIETY,
            crates=1,
            mode="crates",
            gross_g=2_000,
            tare_g=1_000,
            net_g=1_000,
            division_g=200,
            sample=sample,
            operator_id=POISON,
        ),
        "lots.graded": LotGraded(
            correlation_id=POISON,
            lot_id=POISON,
            station_id=POISON,
            ticket_no=1,
            farmer_id=POISON,
            variety=BOOK_VARIETY,
            crates=1,
            net_g=1_000,
            grade=BOOK_GRADE,
            profile_id=POISON,
            profile_version=1,
            brix_mean=12.0,
            brix_samples=1,
            reason=POISON,
        ),
        "book.commands": PlaceBid(
            correlation_id=POISON,
            bid_id=POISON,
            merchant_id=POISON,
            variety=BOOK_VARIETY,
            grade=BOOK_GRADE,
            price_fen_per_kg=100,
            quantity_g=1_000,
        ),
        "trades": TradeExecuted(
            correlation_id=POISON,
            trade_id=f"{book}:1",
            book=book,
            sequence=1,
            lot_id=POISON,
            farmer_id=POISON,
            bid_id=POISON,
            merchant_id=POISON,
            variety=BOOK_VARIETY,
            grade=BOOK_GRADE,
            crates=1,
            weight_g=1_000,
            price_fen_per_kg=100,
            amount_fen=100,
            destination=POISON,
            cold_chain=False,
        ),
        "board.updates": BoardUpdated(
            correlation_id=POISON,
            book=book,
            variety=BOOK_VARIETY,
            grade=BOOK_GRADE,
            best_bid_fen_per_kg=None,
            bids_resting=0,
            bid_depth_g=0,
            lots_resting=0,
            offered_g=0,
            last_price_fen_per_kg=None,
            volume_g=0,
            trades=0,
        ),
        "bid.updates": BidUpdated(
            correlation_id=POISON,
            bid_id=POISON,
            merchant_id=POISON,
            book=book,
            variety=BOOK_VARIETY,
            grade=BOOK_GRADE,
            status="resting",
            price_fen_per_kg=100,
            quantity_g=1_000,
            filled_g=0,
            remaining_g=1_000,
            amount_fen=0,
        ),
        "dispatch.yard": TruckCheckedIn(
            correlation_id=PLATE,
            plate=PLATE,
            driver=POISON,
            capacity_g=1_000,
            refrigerated=False,
            destinations=(POISON,),
            checked_in_by=POISON,
        ),
    }


def another_topics_event(spec: TopicSpec, by_topic: dict[str, Message]) -> Message:
    """The first sample that is no value of ``spec``: an event that belongs elsewhere."""
    for message in by_topic.values():
        try:
            spec.adapter.validate_python(message.model_dump())
        except ValueError:
            return message
    raise AssertionError(f"every sample is a value of {spec.name}")


@dataclass(frozen=True)
class Poison:
    """One bad record: its key and value, and what the reason of its dead letter must say."""

    key: bytes | None
    value: bytes | None
    fault: str


def largest_value(limit_bytes: int, key: bytes, good: Message) -> bytes:
    """The sample with a padding field that brings the record to just under the topic's limit.

    A record batch holds a record with some 70 bytes of framing; 512 are left for it.
    """
    body = good.model_dump(mode="json")
    body["padding"] = ""
    base = len(json.dumps(body).encode())
    body["padding"] = "x" * (limit_bytes - 512 - len(key) - base)
    return json.dumps(body).encode()


KINDS: dict[str, Callable[[TopicSpec, Message, Message, int], Poison]] = {
    "not JSON": lambda spec, good, other, limit: Poison(
        spec.key_of(good).encode(), b"\x01garbage \xff\xfe", "Invalid JSON"
    ),
    "wrong schema": lambda spec, good, other, limit: Poison(
        spec.key_of(good).encode(), b'{"melon": "hami", "kg": 3}', f"invalid {spec.name} value"
    ),
    "another topic's event": lambda spec, good, other, limit: Poison(
        spec.key_of(good).encode(), encode(other), f"'{type(other).__name__}'"
    ),
    "wrong key": lambda spec, good, other, limit: Poison(
        f"{POISON}-someone-else".encode(), encode(good), "does not name"
    ),
    "no value": lambda spec, good, other, limit: Poison(
        spec.key_of(good).encode(), None, "empty value"
    ),
    "1000-character key": lambda spec, good, other, limit: Poison(
        b"k" * 1000, encode(good), "does not name"
    ),
    "garbage under an 80-digit key": lambda spec, good, other, limit: Poison(
        b"0" * 80, b"\x01garbage", "Invalid JSON"
    ),
    "value at the size limit": lambda spec, good, other, limit: Poison(
        spec.key_of(good).encode(),
        largest_value(limit, spec.key_of(good).encode(), good),
        "padding",
    ),
}

KNOWN: dict[tuple[str, Service, str], str] = {}
"""Cases that fail for a reason outside these tests' fixes; strict, so a fix shows up."""

Place = tuple[str, int, int]


def record_limit(broker: Broker, spec: TopicSpec) -> int:
    """The topic's ``max.message.bytes`` as the broker has it."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="melon-poison")
    try:
        described = admin.describe_configs(
            [ConfigResource("TOPIC", spec.name, ["max.message.bytes"])], config_filter="all"
        )
    finally:
        admin.close()
    return int(described["topic"][spec.name]["max.message.bytes"]["value"])


@pytest.fixture(scope="module")
def poisoned(broker: Broker, hall: Hall) -> dict[tuple[str, str], tuple[Place, Poison]]:
    """Every kind of bad record written once to every topic a service reads; where each went."""
    by_topic = samples()
    missing = {spec.name for spec, _ in READS} - set(by_topic)
    assert not missing, f"no sample value for {sorted(missing)}: add one to samples()"
    biggest = max(record_limit(broker, spec) for spec, _ in READS)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", max_request_size=2 * biggest
    )
    written: dict[tuple[str, str], tuple[Place, Poison]] = {}
    try:
        for spec in {spec.name: spec for spec, _ in READS}.values():
            good = by_topic[spec.name]
            other = another_topics_event(spec, by_topic)
            limit = record_limit(broker, spec)
            for kind, make in KINDS.items():
                poison = make(spec, good, other, limit)
                sent = producer.send(spec.name, key=poison.key, value=poison.value)
                where = sent.get(timeout=30)
                written[spec.name, kind] = ((spec.name, where.partition, where.offset), poison)
    finally:
        producer.close()
    return written


def letters_of(broker: Broker, specs: list[TopicSpec]) -> dict[tuple[Place, str], DeadLettered]:
    """Every dead letter on the dead-letter topics of ``specs``, by the record and its rejecter."""
    found: dict[tuple[Place, str], DeadLettered] = {}
    for spec in specs:
        for _, letter in read_topic(broker.bootstrap, by_name(spec.dlq)):
            assert isinstance(letter, DeadLettered)
            place = (letter.source_topic, letter.partition, letter.offset)
            found[place, letter.rejected_by] = letter
    return found


@pytest.fixture(scope="module")
def filed(
    broker: Broker, poisoned: dict[tuple[str, str], tuple[Place, Poison]]
) -> dict[tuple[Place, str], DeadLettered]:
    """The dead letters of the poison, once every reader has filed all it should (or a minute)."""
    specs = list({spec.name: spec for spec, _ in READS}.values())
    expected = {
        (poisoned[spec.name, kind][0], service)
        for spec, service in READS
        for kind in KINDS
        if (spec.name, service, kind) not in KNOWN
    }
    letters: dict[tuple[Place, str], DeadLettered] = {}

    def all_filed() -> bool:
        letters.update(letters_of(broker, specs))
        return expected <= set(letters)

    with contextlib.suppress(AssertionError):  # each case below names what is missing
        eventually(all_filed, timeout_s=60, every_s=1)
    return letters


CASES = [
    pytest.param(
        spec.name,
        service,
        kind,
        id=f"{spec.name}-{service}-{kind}",
        marks=[pytest.mark.xfail(reason=KNOWN[spec.name, service, kind], strict=True)]
        if (spec.name, service, kind) in KNOWN
        else [],
    )
    for spec, service in READS
    for kind in KINDS
]


@pytest.mark.parametrize(("topic", "service", "kind"), CASES)
def test_a_bad_record_is_dead_lettered_by_each_reader_with_its_fault(
    poisoned: dict[tuple[str, str], tuple[Place, Poison]],
    filed: dict[tuple[Place, str], DeadLettered],
    topic: str,
    service: Service,
    kind: str,
) -> None:
    place, poison = poisoned[topic, kind]
    letter = filed.get((place, service))
    assert letter is not None, f"{service} filed no dead letter for {kind} at {place}"
    assert poison.fault in letter.reason, letter.reason
    assert letter.key_size_bytes == (None if poison.key is None else len(poison.key))
    assert letter.value_size_bytes == (None if poison.value is None else len(poison.value))
    if poison.key is not None and len(poison.key) <= 1024:
        assert letter.key == poison.key.decode("utf-8", errors="replace")
    if poison.value is not None:
        assert letter.payload == poison.value.decode("utf-8", errors="replace")[:10_000]


def test_the_hall_weighs_trades_and_dispatches_after_the_poison(
    hall: Hall, filed: dict[tuple[Place, str], DeadLettered]
) -> None:
    lot_id, bid_id = f"LOT-{POISON}", f"BID-{POISON}"
    destination = f"兰州-{POISON}"
    pricing, dispatch = hall.url("pricing"), hall.url("dispatch")
    for service in ("ingest", "pricing", "dispatch"):
        assert httpx.get(f"{hall.url(service)}/healthz", timeout=10).status_code == 200

    # Given a merchant's bid above any reserve for class I Xizhoumi
    response = httpx.post(
        f"{pricing}/bids",
        headers=merchant("merchant-zhengzhou"),
        json={
            "bid_id": bid_id,
            "variety": "xizhoumi",
            "grade": "class_i",
            "price_yuan_per_kg": "9.90",
            "quantity_kg": "50",
            "destination": destination,
        },
        timeout=20,
    )
    assert response.status_code == 202, response.text

    # When a class I lot of that much is weighed and graded
    weigh(hall, lot_id, [12.5, 12.8, 13.1], gross_kg="58.0", crates=5)
    lot = eventually(lambda: _graded(hall, lot_id))
    assert lot["grade"]["grade"] == "class_i"

    # Then the bid trades, and the merchant, the price board and the yard all see the trade
    trade = eventually(lambda: _trade_of(hall, bid_id), timeout_s=60)
    bid = eventually(lambda: _bid_that_traded(hall, bid_id))
    assert bid["status"] in ("filled", "resting")
    board = httpx.get(f"{pricing}/board/xizhoumi/class_i", timeout=10).json()
    assert board["trades"] >= 1
    shipment = eventually(lambda: _shipment_with(hall, trade["trade_id"]))
    assert shipment["destination"] == destination

    # And a truck checks in at the gate
    response = httpx.post(
        f"{dispatch}/trucks",
        json={
            "plate": f"甘P{RUN[:5].upper()}",
            "driver": "马师傅",
            "capacity_kg": "5000",
            "refrigerated": False,
            "destinations": [destination],
            "checked_in_by": "gate-1",
        },
        timeout=20,
    )
    assert response.status_code == 201, response.text

    # And every service still says it is ready
    for service in ("ingest", "pricing", "dispatch"):
        assert httpx.get(f"{hall.url(service)}/healthz", timeout=10).status_code == 200


RESTARTED = ("dispatch", "pricing-api")
"""The processes whose readers replay their topics from the beginning on start."""


def test_readers_that_replay_the_poison_on_a_restart_are_ready_and_file_nothing_twice(
    broker: Broker,
    hall: Hall,
    poisoned: dict[tuple[str, str], tuple[Place, Poison]],
    filed: dict[tuple[Place, str], DeadLettered],
) -> None:
    specs = list({spec.name: spec for spec, _ in READS}.values())
    places = {place for place, _ in poisoned.values()}
    last: list[dict[tuple[Place, str], list[UUID]]] = []

    def settled() -> dict[tuple[Place, str], list[UUID]] | None:
        now = _letters_per_record(broker, specs, places)
        same = bool(last) and last[-1] == now
        last.append(now)
        return now if same else None

    # Given the poison's letters, all filed (two reads a second apart agree)
    before = eventually(settled, timeout_s=30, every_s=1)
    # Each service files one letter per record; two of its readers filing one record file
    # the same letter (one event id), which readers of the dead letters take as one
    assert not {key: ids for key, ids in before.items() if len(set(ids)) != 1}

    # When dispatch and the pricing API start again and read their topics from the beginning
    for name in RESTARTED:
        hall.services[name].stop()
    hall.start(list(RESTARTED), timeout_s=60)

    # Then they are ready again, and no record rejected before is filed again
    after = _letters_per_record(broker, specs, places)
    grew = {key: (len(before.get(key, [])), len(ids)) for key, ids in after.items()}
    assert not {key: counts for key, counts in grew.items() if counts[0] != counts[1]}

    # And the issue's own record, 80 digits as key and garbage as value, is filed once, live
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        where = producer.send("dispatch.yard", key=b"0" * 80, value=b"\x01garbage").get(30)
    finally:
        producer.close()
    place = ("dispatch.yard", where.partition, where.offset)
    yard = [by_name("dispatch.yard")]
    letter = eventually(lambda: letters_of(broker, yard).get((place, "dispatch")))
    assert letter.key == "0" * 80 and "Invalid JSON" in letter.reason
    assert httpx.get(f"{hall.url('dispatch')}/healthz", timeout=10).status_code == 200


def _letters_per_record(
    broker: Broker, specs: list[TopicSpec], places: set[Place]
) -> dict[tuple[Place, str], list[UUID]]:
    """The event ids of the dead letters each service filed for each record at ``places``."""
    letters: dict[tuple[Place, str], list[UUID]] = {}
    for spec in specs:
        for _, letter in read_topic(broker.bootstrap, by_name(spec.dlq)):
            assert isinstance(letter, DeadLettered)
            place = (letter.source_topic, letter.partition, letter.offset)
            if place in places:
                letters.setdefault((place, letter.rejected_by), []).append(letter.event_id)
    return letters


def _graded(hall: Hall, lot_id: str) -> dict[str, Any] | None:
    lot: dict[str, Any] = httpx.get(f"{hall.url('ingest')}/lots/{lot_id}", timeout=10).json()
    return lot if lot.get("status") == "graded" else None


def _trade_of(hall: Hall, bid_id: str) -> dict[str, Any] | None:
    trades = httpx.get(
        f"{hall.url('pricing')}/me/trades", headers=merchant("merchant-zhengzhou"), timeout=10
    ).json()
    return next((t for t in trades if t["bid_id"] == bid_id), None)


def _bid_that_traded(hall: Hall, bid_id: str) -> dict[str, Any] | None:
    """The bid as ``bid.updates`` tells it, once it has a fill."""
    bids = httpx.get(
        f"{hall.url('pricing')}/me/bids", headers=merchant("merchant-zhengzhou"), timeout=10
    ).json()
    return next((b for b in bids if b["bid_id"] == bid_id and b["filled_kg"] != "0"), None)


def _shipment_with(hall: Hall, trade_id: str) -> dict[str, Any] | None:
    shipments = httpx.get(f"{hall.url('dispatch')}/shipments", timeout=10).json()
    return next(
        (s for s in shipments if trade_id in {line["trade_id"] for line in s["lines"]}), None
    )
