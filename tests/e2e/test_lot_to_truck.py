"""One lot travels from a weigh station to a truck through the real broker.

Given a broker and the services running as separate processes, when people use the hall over
HTTP, then each hop's event is on its topic (read back with a plain Kafka consumer) and the APIs
show the result. The truck yard's own rules (grouping, races between instances, restarts) have
their tests in ``test_dispatch_yard``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from melon_contracts.commands import OfferLot
from melon_contracts.events import (
    DeadLettered,
    LotGraded,
    LotWeighed,
    ShipmentAssigned,
    TradeExecuted,
    TruckStatusChanged,
)
from melon_contracts.topics import (
    BOOK_COMMANDS,
    DISPATCH_YARD,
    LOTS_GRADED,
    LOTS_WEIGHED,
    TRADES,
    TopicSpec,
    by_name,
)
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from melon_devkit.trace import read_topic, trace

from .conftest import eventually, merchant, weigh

pytestmark = pytest.mark.e2e


def about(broker: Broker, spec: TopicSpec, correlation_id: str) -> list[tuple[str | None, Any]]:
    records = read_topic(broker.bootstrap, spec)
    return [(k, m) for k, m in records if m.correlation_id == correlation_id]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_lot_is_weighed_graded_sold_and_put_on_a_truck(broker: Broker, hall: Hall) -> None:
    lot_id, bid_id, plate = new_id("LOT"), new_id("BID"), f"甘H{uuid.uuid4().hex[:5].upper()}"
    # A destination of this test's own, so the shared yard's other trucks cannot take the goods.
    destination = f"兰州-{uuid.uuid4().hex[:6]}"

    # Given a lot of 40 crates weighed on the platform scale with a Class I sample
    ticket = weigh(hall, lot_id, [12.5, 12.8, 13.1])
    assert (ticket["gross_kg"], ticket["tare_kg"], ticket["net_kg"]) == ("464.0", "64.0", "400.0")

    # Then the weighing and the grade are on their topics, keyed by the lot
    [(key, weighed)] = eventually(lambda: about(broker, LOTS_WEIGHED, lot_id))
    assert key == lot_id and isinstance(weighed, LotWeighed)
    assert (weighed.gross_g, weighed.tare_g, weighed.net_g) == (464_000, 64_000, 400_000)
    assert weighed.ticket_no == ticket["ticket_no"] and weighed.station_id == "ws-1"
    [(key, graded)] = eventually(lambda: about(broker, LOTS_GRADED, lot_id))
    assert key == lot_id and isinstance(graded, LotGraded)
    assert graded.grade == "class_i" and graded.profile_id == "minqin-honeydew"
    lot = eventually(lambda: _graded_lot(hall, lot_id))
    assert lot["grade"]["grade_zh"] == "一级"

    # And pricing put the lot on its book
    [(key, offer)] = eventually(lambda: about(broker, BOOK_COMMANDS, lot_id))
    assert key == "xizhoumi.class_i" and isinstance(offer, OfferLot)

    # When a merchant bids for all of it above the reserve
    response = httpx.post(
        f"{hall.url('pricing')}/bids",
        headers=merchant("merchant-lanzhou"),
        json={
            "bid_id": bid_id,
            "variety": "xizhoumi",
            "grade": "class_i",
            "price_yuan_per_kg": "5.60",
            "quantity_kg": "400",
            "destination": destination,
            "cold_chain": True,
        },
        timeout=20,
    )
    assert response.status_code == 202, response.text

    # Then the matcher sells the lot at the bid's price, whole
    [(key, trade)] = eventually(lambda: about(broker, TRADES, lot_id))
    assert isinstance(trade, TradeExecuted)
    assert (trade.bid_id, trade.crates, trade.weight_g) == (bid_id, 40, 400_000)
    assert (trade.price_fen_per_kg, trade.amount_fen) == (560, 224_000)
    assert trade.cold_chain and trade.destination == destination

    # And the price board shows the trade
    line = eventually(lambda: _board_with_trade(hall, trade.sequence))
    assert line["last_price_yuan_per_kg"] == "5.60"

    # Then dispatch waits it as the merchant's shipment for that destination, cold chain kept
    dispatch = hall.url("dispatch")
    shipment = eventually(lambda: _shipment_for(hall, trade.trade_id))
    assert (shipment["merchant_id"], shipment["destination"], shipment["cold_chain"]) == (
        "merchant-lanzhou",
        destination,
        True,
    )
    assert [(line["lot_id"], line["farmer_id"]) for line in shipment["lines"]] == [
        (lot_id, "farmer-zhang")
    ]

    # When a reefer set to 8 °C checks in for that destination
    response = httpx.post(
        f"{dispatch}/trucks",
        json={
            "plate": plate,
            "driver": "马师傅",
            "phone": "13800000001",
            "capacity_kg": "10000",
            "refrigerated": True,
            "setpoint_c": "8.0",
            "destinations": [destination],
            "checked_in_by": "gate-1",
        },
        timeout=20,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "waiting"

    # Then the suggested loads put the shipment on it, and staff accept them for that truck
    response = httpx.get(f"{dispatch}/suggestions", timeout=20)
    assert response.status_code == 200, response.text
    suggestion = response.json()
    [load] = [load for load in suggestion["loads"] if load["plate"] == plate]
    assert [(p["shipment_id"], p["lot_ids"]) for p in load["parts"]] == [
        (shipment["shipment_id"], [lot_id])
    ]
    response = httpx.post(
        f"{dispatch}/suggestions/{suggestion['suggestion_id']}/accept",
        json={"accepted_by": "yard-1", "plates": [plate]},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    [assignment] = response.json()["assigned"]
    assert (assignment["plate"], assignment["decision"]) == (plate, "suggested")
    assert _shipment_for(hall, trade.trade_id) is None

    # When the truck goes to a free bay, is loaded and leaves through the gate
    bays = httpx.get(f"{dispatch}/yard", timeout=20).json()["bays"]
    bay = next(b["bay"] for b in bays if b["plate"] is None)
    steps = [
        ("bay", "loading", {"bay": bay}),
        ("loaded", "loaded", {}),
        ("departure", "departed", {}),
    ]
    for path, status, extra in steps:
        response = httpx.post(
            f"{dispatch}/trucks/{plate}/{path}", json={"by": "yard-1", **extra}, timeout=20
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status

    # Then the yard's log holds the suggested assignment, lot by lot, and each move with who
    yard = [
        (key, m)
        for key, m in read_topic(broker.bootstrap, DISPATCH_YARD)
        if m.correlation_id == plate
    ]
    assert {key for key, _ in yard} == {plate}
    assert [type(m).__name__ for _, m in yard] == [
        "TruckCheckedIn",
        "ShipmentAssigned",
        "TruckStatusChanged",
        "TruckStatusChanged",
        "TruckStatusChanged",
    ]
    assigned = yard[1][1]
    assert isinstance(assigned, ShipmentAssigned)
    assert (assigned.decision, assigned.suggestion_id, assigned.assigned_by) == (
        "suggested",
        suggestion["suggestion_id"],
        "yard-1",
    )
    assert [
        (line.trade_id, line.lot_id, line.farmer_id, line.weight_g) for line in assigned.lines
    ] == [(trade.trade_id, lot_id, "farmer-zhang", 400_000)]
    moves = [m for _, m in yard if isinstance(m, TruckStatusChanged)]
    assert [(m.status, m.bay, m.changed_by) for m in moves] == [
        ("loading", bay, "yard-1"),
        ("loaded", None, "yard-1"),
        ("departed", None, "yard-1"),
    ]

    # And the dispatch note that left with the truck lists the lot and its farm
    note = httpx.get(f"{dispatch}/trucks/{plate}/note", headers={"Accept": "text/html"})
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/html")
    row = re.search(rf'<tr data-lot="{re.escape(lot_id)}">(.*?)</tr>', note.text)
    assert row is not None, note.text
    assert "farmer-zhang" in row.group(1) and ">40<" in row.group(1)

    # And the lot can be followed by its id from the weigh station to the truck
    traced = trace(broker.bootstrap, lot_id)
    ledger = [m.kind for topic, _, m in traced if topic == "ingest.ledger"]
    assert ledger == ["lot_weighed", "ticket_printed"]
    hops = [(topic, type(m).__name__) for topic, _, m in traced if topic != "ingest.ledger"]
    assert hops == [
        ("lots.weighed", "LotWeighed"),
        ("lots.graded", "LotGraded"),
        ("book.commands", "OfferLot"),
        ("board.updates", "BoardUpdated"),
        ("trades", "TradeExecuted"),
        ("dispatch.yard", "TruckCheckedIn"),
        ("dispatch.yard", "ShipmentAssigned"),
        ("dispatch.yard", "TruckStatusChanged"),
        ("dispatch.yard", "TruckStatusChanged"),
        ("dispatch.yard", "TruckStatusChanged"),
    ]
    on_truck = [m for topic, _, m in traced if topic == "dispatch.yard"]
    assert [m.event_id for m in on_truck if isinstance(m, ShipmentAssigned)] == [assigned.event_id]
    assert [getattr(m, "status", None) for m in on_truck[2:]] == ["loading", "loaded", "departed"]
    assert {m.plate for m in on_truck} == {plate}


def test_bad_bids_get_a_clear_reason(hall: Hall) -> None:
    base = {
        "variety": "xizhoumi",
        "grade": "class_i",
        "price_yuan_per_kg": "5.00",
        "quantity_kg": "10",
    }
    bids, who = f"{hall.url('pricing')}/bids", merchant("merchant-chengdu")
    unknown = httpx.post(bids, json={**base, "variety": "durian"}, headers=who)
    assert unknown.status_code == 422
    assert "unknown variety" in unknown.json()["detail"]
    negative = httpx.post(bids, json={**base, "price_yuan_per_kg": "-1"}, headers=who)
    assert negative.status_code == 422
    fractional = httpx.post(bids, json={**base, "price_yuan_per_kg": "5.001"}, headers=who)
    assert fractional.status_code == 422


def test_a_malformed_record_goes_to_the_dead_letter_topic_and_the_matcher_carries_on(
    broker: Broker, hall: Hall
) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(LOTS_GRADED.name, key=b"garbage-lot", value=b'{"type": "LotGraded", "oops": 1}')
    producer.flush()
    producer.close()
    dlq = by_name(LOTS_GRADED.dlq)
    [(_, letter)] = eventually(lambda: about(broker, dlq, "garbage-lot"))
    assert isinstance(letter, DeadLettered)
    assert letter.source_topic == LOTS_GRADED.name and "invalid" in letter.reason

    lot_id = new_id("LOT")
    weigh(hall, lot_id, [12.0, 12.2], gross_kg="58.0", crates=5)
    eventually(lambda: about(broker, BOOK_COMMANDS, lot_id))


def _graded_lot(hall: Hall, lot_id: str) -> dict[str, Any] | None:
    lot: dict[str, Any] = httpx.get(f"{hall.url('ingest')}/lots/{lot_id}", timeout=10).json()
    return lot if lot.get("status") == "graded" else None


def _board_with_trade(hall: Hall, sequence: int) -> dict[str, Any] | None:
    response = httpx.get(f"{hall.url('pricing')}/board/xizhoumi/class_i", timeout=10)
    if response.status_code != 200:
        return None
    line: dict[str, Any] = response.json()
    return line if line["trades"] >= sequence else None


def _shipment_for(hall: Hall, trade_id: str) -> dict[str, Any] | None:
    """The waiting shipment holding a trade, if the trade is waiting."""
    shipments = httpx.get(f"{hall.url('dispatch')}/shipments", timeout=10).json()
    return next(
        (s for s in shipments if trade_id in {line["trade_id"] for line in s["lines"]}), None
    )
