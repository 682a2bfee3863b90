"""One lot travels from a weigh station to a truck through the real broker.

Given a broker and the services running as separate processes, when people use the hall over
HTTP, then each hop's event is on its topic (read back with a plain Kafka consumer) and the APIs
show the result.
"""

from __future__ import annotations

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
)
from melon_contracts.topics import (
    BOOK_COMMANDS,
    DISPATCH_ASSIGNMENTS,
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
            "destination": "兰州",
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
    assert trade.cold_chain and trade.destination == "兰州"

    # And the price board shows the trade
    line = eventually(lambda: _board_with_trade(hall, trade.sequence))
    assert line["last_price_yuan_per_kg"] == "5.60"

    # When a refrigerated truck checks in and staff put the shipment on it
    response = httpx.post(
        f"{hall.url('dispatch')}/trucks",
        json={
            "plate": plate,
            "driver": "马师傅",
            "capacity_kg": "10000",
            "refrigerated": True,
            "checked_in_by": "gate-1",
        },
        timeout=20,
    )
    assert response.status_code == 201, response.text
    shipment = eventually(lambda: _shipment_for(hall, trade.trade_id))
    assert shipment["status"] == "waiting"
    response = httpx.post(
        f"{hall.url('dispatch')}/assignments",
        json={"plate": plate, "shipment_ids": [shipment["shipment_id"]], "assigned_by": "yard-1"},
        timeout=20,
    )
    assert response.status_code == 201, response.text

    # Then the assignment is on its topic, and the lot is traceable to the truck by its id
    [(key, assigned)] = eventually(lambda: about(broker, DISPATCH_ASSIGNMENTS, lot_id))
    assert isinstance(assigned, ShipmentAssigned)
    assert (key, assigned.plate, assigned.trade_id) == (plate, plate, trade.trade_id)
    assert _shipment_for(hall, trade.trade_id)["status"] == "assigned"
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
        ("dispatch.assignments", "ShipmentAssigned"),
    ]


def test_the_same_shipment_cannot_go_on_two_trucks(broker: Broker, hall: Hall) -> None:
    lot_id = new_id("LOT")
    weigh(hall, lot_id, [14.5, 14.9], gross_kg="116.0", crates=10)
    eventually(lambda: about(broker, BOOK_COMMANDS, lot_id))
    bid = {
        "bid_id": new_id("BID"),
        "variety": "xizhoumi",
        "grade": "extra",
        "price_yuan_per_kg": "8.00",
        "quantity_kg": "100",
    }
    placed = httpx.post(
        f"{hall.url('pricing')}/bids", json=bid, headers=merchant("merchant-xian"), timeout=20
    )
    assert placed.status_code == 202, placed.text
    [(_, trade)] = eventually(lambda: about(broker, TRADES, lot_id))
    shipment = eventually(lambda: _shipment_for(hall, trade.trade_id))
    plates = [f"甘A{uuid.uuid4().hex[:5].upper()}" for _ in range(2)]
    for plate in plates:
        truck = {
            "plate": plate,
            "driver": "杨师傅",
            "capacity_kg": "5000",
            "refrigerated": False,
            "checked_in_by": "gate-1",
        }
        assert (
            httpx.post(f"{hall.url('dispatch')}/trucks", json=truck, timeout=20).status_code == 201
        )

    codes = [
        httpx.post(
            f"{hall.url('dispatch')}/assignments",
            json={"plate": plate, "shipment_ids": [shipment["shipment_id"]], "assigned_by": "yard"},
            timeout=20,
        ).status_code
        for plate in plates
    ]
    assert codes == [201, 409]
    assert len(about(broker, DISPATCH_ASSIGNMENTS, lot_id)) == 1


def test_dispatch_rebuilds_its_yard_from_the_topics_after_a_restart(
    broker: Broker, hall: Hall
) -> None:
    plate = f"甘B{uuid.uuid4().hex[:5].upper()}"
    truck = {
        "plate": plate,
        "driver": "李师傅",
        "capacity_kg": "6000",
        "refrigerated": True,
        "checked_in_by": "gate-2",
    }
    assert httpx.post(f"{hall.url('dispatch')}/trucks", json=truck, timeout=20).status_code == 201

    hall.services["dispatch"].stop()
    hall.start(["dispatch"])

    trucks = httpx.get(f"{hall.url('dispatch')}/trucks", timeout=20).json()
    assert plate in [t["plate"] for t in trucks]
    again = httpx.post(f"{hall.url('dispatch')}/trucks", json=truck, timeout=20)
    assert again.status_code == 409


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
    shipments = httpx.get(f"{hall.url('dispatch')}/shipments", timeout=10).json()
    return next((s for s in shipments if s["shipment_id"] == trade_id), None)
