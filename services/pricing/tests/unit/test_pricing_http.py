"""The pricing API without a broker: bids become book commands; bad input gets a reason."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from melon_contracts.commands import PlaceBid
from melon_contracts.events import BoardUpdated
from melon_contracts.reference import Grade
from melon_contracts.topics import BOARD_UPDATES, BOOK_COMMANDS
from melon_contracts.transport import InMemoryPublisher
from pricing.bootstrap import PricingApi, build_for_tests
from pricing.entrypoints.http import create_app

BID = {
    "bid_id": "B-1",
    "merchant_id": "merchant-lanzhou",
    "variety": "xizhoumi",
    "grade": "class_i",
    "price_yuan_per_kg": "5.60",
    "quantity_kg": "400.5",
    "destination": "兰州",
    "cold_chain": True,
}


def test_a_bid_is_sent_to_its_book_in_fen_and_grams() -> None:
    api = build_for_tests()
    with TestClient(create_app(api)) as client:
        response = client.post("/bids", json=BID)
    assert response.status_code == 202
    assert response.json()["book"] == "xizhoumi.class_i"
    assert isinstance(api.publisher, InMemoryPublisher)
    [(topic, key, command)] = api.publisher.sent
    assert (topic, key) == (BOOK_COMMANDS.name, "xizhoumi.class_i")
    assert isinstance(command, PlaceBid)
    assert (command.price_fen_per_kg, command.quantity_g) == (560, 400_500)


def test_bad_bids_are_refused_with_the_reason() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"variety": "durian"}, "unknown variety"),
        ({"price_yuan_per_kg": "5.001"}, "more precision"),
        ({"quantity_kg": "0.0001"}, "more precision"),
    ]
    with TestClient(create_app(build_for_tests())) as client:
        for change, reason in cases:
            response = client.post("/bids", json={**BID, **change})
            assert response.status_code == 422, change
            assert reason in response.json()["detail"], change
        assert client.post("/bids", json={**BID, "price_yuan_per_kg": "-1"}).status_code == 422


def test_a_bid_the_broker_did_not_take_is_a_503_not_a_silent_loss() -> None:
    with TestClient(
        create_app(PricingApi(publisher=InMemoryPublisher("pricing", unreachable=True)))
    ) as client:
        response = client.post("/bids", json=BID)
    assert (response.status_code, response.json()["error"]) == (503, "broker_unavailable")


def test_the_board_shows_the_latest_line_per_book_in_yuan_and_kg() -> None:
    api = build_for_tests()
    for trades, price in ((1, 520), (2, 560)):
        line = BoardUpdated(
            correlation_id="B-1",
            book="xizhoumi.class_i",
            variety="xizhoumi",
            grade=Grade.CLASS_I,
            best_bid_fen_per_kg=None,
            bids_resting=0,
            bid_depth_g=0,
            lots_resting=1,
            offered_g=12_345,
            last_price_fen_per_kg=price,
            volume_g=400_000 * trades,
            trades=trades,
        )
        api.on_board_update(BOARD_UPDATES, line.book, line)
    with TestClient(create_app(api)) as client:
        board = client.get("/board/xizhoumi/class_i").json()
        missing = client.get("/board/xizhoumi/extra")
    assert (board["last_price_yuan_per_kg"], board["volume_kg"], board["offered_kg"]) == (
        "5.60",
        "800",
        "12.345",
    )
    assert board["grade_zh"] == "一级"
    assert missing.status_code == 404
