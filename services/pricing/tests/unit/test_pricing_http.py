"""The pricing API without a broker: merchants' tokens, credit, their own bids and trades only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from melon_contracts.commands import AmendBid, CancelBid, PlaceBid, WithdrawLot
from melon_contracts.events import BidUpdated, BoardUpdated, TradeExecuted
from melon_contracts.health import BrokerWatch
from melon_contracts.reference import Grade
from melon_contracts.topics import BID_UPDATES, BOARD_UPDATES, BOOK_COMMANDS, TRADES
from melon_contracts.transport import InMemoryPublisher
from pricing.accounts import Accounts, token_hash
from pricing.bootstrap import PricingApi, build_for_tests
from pricing.entrypoints.http import create_app, end_of_trading_day

LANZHOU, XIAN, COOP = "token-lanzhou", "token-xian", "token-coop"
BID = {
    "bid_id": "B-1",
    "variety": "xizhoumi",
    "grade": "class_i",
    "price_yuan_per_kg": "5.60",
    "quantity_kg": "400.5",
    "destination": "兰州",
    "cold_chain": True,
}


A_TRADE = TradeExecuted(
    correlation_id="L-1",
    trade_id="xizhoumi.class_i:1",
    book="xizhoumi.class_i",
    sequence=1,
    lot_id="L-1",
    farmer_id="F-1",
    bid_id="B-1",
    merchant_id="merchant-lanzhou",
    variety="xizhoumi",
    grade=Grade.CLASS_I,
    crates=30,
    weight_g=300_000,
    price_fen_per_kg=560,
    amount_fen=168_000,
    destination="兰州",
    cold_chain=True,
)
"""300 kg of lot L-1 to Lanzhou's bid B-1 at 5.60: 1680.00 yuan."""


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api() -> PricingApi:
    accounts = Accounts()
    accounts.add("merchant-lanzhou", "兰州果品", 1_000_000, token=LANZHOU)  # 10 000 yuan
    accounts.add("merchant-xian", "西安鲜果", 500_000, token=XIAN)
    accounts.add("coop", "民勤合作社", 0, role="cooperative", token=COOP)
    return build_for_tests(accounts)


@pytest.fixture
def client(api: PricingApi) -> Iterator[TestClient]:
    with TestClient(create_app(api)) as client:
        yield client


def sent(api: PricingApi) -> list[Any]:
    assert isinstance(api.publisher, InMemoryPublisher)
    return [command for _, _, command in api.publisher.sent]


def report(api: PricingApi, bid_id: str, status: str, remaining_g: int, **fields: Any) -> None:
    """The matcher's report of a bid, as the API reads it from bid.updates."""
    update = BidUpdated(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id=fields.pop("merchant_id", "merchant-lanzhou"),
        book="xizhoumi.class_i",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        status=status,  # type: ignore[arg-type]
        price_fen_per_kg=fields.pop("price", 560),
        quantity_g=fields.pop("quantity_g", 400_500),
        filled_g=fields.pop("filled_g", 0),
        remaining_g=remaining_g,
        amount_fen=fields.pop("amount_fen", 0),
    )
    api.on_message(BID_UPDATES, bid_id, update)


def test_a_bid_is_sent_to_its_book_in_fen_and_grams_as_the_tokens_merchant(
    client: TestClient, api: PricingApi
) -> None:
    response = client.post("/bids", json=BID, headers=auth(LANZHOU))
    assert response.status_code == 202, response.text
    assert response.json()["book"] == "xizhoumi.class_i"
    [command] = sent(api)
    assert isinstance(command, PlaceBid)
    assert (command.merchant_id, command.price_fen_per_kg, command.quantity_g) == (
        "merchant-lanzhou",
        560,
        400_500,
    )
    assert command.expires_at is not None and command.expires_at > datetime.now(UTC)


def test_the_day_ends_at_midnight_in_the_hall() -> None:
    evening = datetime(2026, 8, 12, 15, 30, tzinfo=UTC)  # 23:30 in Minqin
    assert end_of_trading_day(evening) == datetime(2026, 8, 12, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "not_authenticated"), (auth("forged"), 401, "not_authenticated")],
    ids=["no-token", "unknown-token"],
)
def test_bidding_needs_a_merchant_token(
    client: TestClient, api: PricingApi, headers: dict[str, str], status: int, code: str
) -> None:
    response = client.post("/bids", json=BID, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert sent(api) == []


def test_tokens_are_kept_only_as_hashes(api: PricingApi) -> None:
    account = api.accounts.get("merchant-lanzhou")
    assert account is not None and account.token_sha256 == token_hash(LANZHOU)
    assert LANZHOU not in repr(api.accounts.all())


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"variety": "durian"}, 422, "unknown_variety"),
        ({"grade": "premium"}, 422, "invalid_request"),
        ({"price_yuan_per_kg": "0"}, 422, "invalid_request"),
        ({"price_yuan_per_kg": "-1"}, 422, "invalid_request"),
        ({"price_yuan_per_kg": "5.601"}, 422, "invalid_amount"),
        ({"price_yuan_per_kg": "99999"}, 422, "invalid_request"),
        ({"price_yuan_per_kg": "NaN"}, 422, "invalid_request"),
        ({"quantity_kg": "0"}, 422, "invalid_request"),
        ({"quantity_kg": "1e9"}, 422, "invalid_request"),
        ({"min_lot_kg": "500"}, 422, "invalid_bid"),
        ({"expires_at": "2020-01-01T00:00:00+08:00"}, 422, "invalid_bid"),
        ({"quantity_kg": "2000"}, 409, "credit_exceeded"),
    ],
    ids=[
        "unknown-variety",
        "unknown-grade",
        "zero-price",
        "negative-price",
        "fraction-of-a-fen",
        "absurd-price",
        "nan-price",
        "zero-quantity",
        "absurd-quantity",
        "min-lot-above-quantity",
        "expired",
        "over-credit",
    ],
)
def test_bad_bids_get_a_clear_reason(
    client: TestClient, api: PricingApi, changes: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/bids", json={**BID, **changes}, headers=auth(LANZHOU))
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and response.json()["detail"]
    assert sent(api) == []


def test_credit_counts_resting_bids_and_trades(client: TestClient, api: PricingApi) -> None:
    # 400.5 kg at 5.60 = 2242.80 yuan held while the bid rests
    assert client.post("/bids", json=BID, headers=auth(LANZHOU)).status_code == 202
    me = client.get("/me", headers=auth(LANZHOU)).json()
    assert (me["credit_limit_yuan"], me["committed_yuan"], me["remaining_yuan"]) == (
        "10000.00",
        "2242.80",
        "7757.20",
    )
    # The matcher fills 300 kg of it: 1680.00 spent, 100.5 kg (562.80) still held
    trade = A_TRADE
    api.on_message(TRADES, trade.book, trade)
    api.on_message(TRADES, trade.book, trade)  # delivered twice, counted once
    report(api, "B-1", "resting", 100_500, filled_g=300_000, amount_fen=168_000)
    me = client.get("/me", headers=auth(LANZHOU)).json()
    assert (me["committed_yuan"], me["spent_yuan"], me["remaining_yuan"]) == (
        "562.80",
        "1680.00",
        "7757.20",
    )
    # 7757.20 yuan left: a bid for 1400 kg at 5.60 (7840.00) is too much, 1385 kg (7756.00) fits
    over = client.post(
        "/bids", json={**BID, "bid_id": "B-2", "quantity_kg": "1400"}, headers=auth(LANZHOU)
    )
    assert over.status_code == 409 and "7757.20" in over.json()["detail"]
    assert "剩余额度 7757.20 元" in over.json()["detail_zh"]
    fits = client.post(
        "/bids", json={**BID, "bid_id": "B-2", "quantity_kg": "1385"}, headers=auth(LANZHOU)
    )
    assert fits.status_code == 202


def test_a_failed_send_holds_no_credit(client: TestClient, api: PricingApi) -> None:
    assert isinstance(api.publisher, InMemoryPublisher)
    api.publisher.unreachable = True
    response = client.post("/bids", json=BID, headers=auth(LANZHOU))
    assert (response.status_code, response.json()["error"]) == (503, "broker_unavailable")
    assert client.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "0.00"


def test_a_repeated_bid_id_is_sent_again_but_held_once(client: TestClient, api: PricingApi) -> None:
    for _ in range(2):
        assert client.post("/bids", json=BID, headers=auth(LANZHOU)).status_code == 202
    assert len(sent(api)) == 2  # the book ignores the second
    assert client.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "2242.80"


def test_merchants_act_only_on_their_own_bids(client: TestClient, api: PricingApi) -> None:
    client.post("/bids", json=BID, headers=auth(LANZHOU))
    report(api, "B-1", "resting", 400_500)
    for method, url, body in [
        ("post", "/bids/B-1/cancel", None),
        ("patch", "/bids/B-1", {"price_yuan_per_kg": "9.00"}),
        ("post", "/bids", BID),
    ]:
        response = client.request(method, url, json=body, headers=auth(XIAN))
        assert (response.status_code, response.json()["error"]) == (403, "forbidden"), url
    assert client.get("/me/bids", headers=auth(XIAN)).json() == []
    [mine] = client.get("/me/bids", headers=auth(LANZHOU)).json()
    assert (mine["bid_id"], mine["status"], mine["remaining_kg"]) == ("B-1", "resting", "400.5")
    missing = client.post("/bids/B-404/cancel", headers=auth(LANZHOU))
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_bid")


def test_amend_and_cancel_go_to_the_bids_book(client: TestClient, api: PricingApi) -> None:
    client.post("/bids", json=BID, headers=auth(LANZHOU))
    report(api, "B-1", "resting", 400_500)
    amended = client.patch("/bids/B-1", json={"price_yuan_per_kg": "5.80"}, headers=auth(LANZHOU))
    assert amended.status_code == 202, amended.text
    assert client.post("/bids/B-1/cancel", headers=auth(LANZHOU)).status_code == 202
    _place, amend, cancel = sent(api)
    assert isinstance(amend, AmendBid) and amend.price_fen_per_kg == 580
    assert amend.quantity_g is None and isinstance(cancel, CancelBid)
    too_much = client.patch("/bids/B-1", json={"quantity_kg": "5000"}, headers=auth(LANZHOU))
    assert too_much.status_code == 409 and too_much.json()["error"] == "credit_exceeded"


def test_a_filled_bid_cannot_be_cancelled(client: TestClient, api: PricingApi) -> None:
    client.post("/bids", json=BID, headers=auth(LANZHOU))
    report(api, "B-1", "filled", 0, filled_g=400_500)
    response = client.post("/bids/B-1/cancel", headers=auth(LANZHOU))
    assert (response.status_code, response.json()["error"]) == (409, "bid_not_resting")
    assert "filled" in response.json()["detail"] and "已成交" in response.json()["detail_zh"]


def test_an_amendment_in_flight_holds_the_larger_cost_not_both(
    client: TestClient, api: PricingApi
) -> None:
    client.post("/bids", json=BID, headers=auth(LANZHOU))
    report(api, "B-1", "resting", 400_500)  # 2242.80 yuan held
    client.patch("/bids/B-1", json={"price_yuan_per_kg": "6.00"}, headers=auth(LANZHOU))
    # 400.5 kg at 6.00 = 2403.00 until the matcher reports the amendment
    assert client.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "2403.00"
    report(api, "B-1", "resting", 400_500, price=600)
    assert client.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "2403.00"


def test_merchants_see_only_their_own_trades(client: TestClient, api: PricingApi) -> None:
    trade = A_TRADE
    api.on_message(TRADES, trade.book, trade)
    [mine] = client.get("/me/trades", headers=auth(LANZHOU)).json()
    assert (mine["amount_yuan"], mine["weight_kg"]) == ("1680.00", "300")
    assert client.get("/me/trades", headers=auth(XIAN)).json() == []
    other = client.get(f"/trades/{trade.trade_id}", headers=auth(XIAN))
    assert (other.status_code, other.json()["error"]) == (403, "forbidden")
    assert client.get(f"/trades/{trade.trade_id}", headers=auth(COOP)).status_code == 200


def test_only_the_cooperative_withdraws_lots(client: TestClient, api: PricingApi) -> None:
    body = {"variety": "xizhoumi", "grade": "class_i", "reason": "farmer took it back"}
    refused = client.post("/lots/L-1/withdraw", json=body, headers=auth(LANZHOU))
    assert refused.status_code == 403
    assert client.post("/lots/L-1/withdraw", json=body, headers=auth(COOP)).status_code == 202
    [command] = sent(api)
    assert isinstance(command, WithdrawLot) and command.withdrawn_by == "coop"


def test_the_board_shows_the_latest_line_per_book_in_yuan_and_kg(
    client: TestClient, api: PricingApi
) -> None:
    line = BoardUpdated(
        correlation_id="x",
        book="xizhoumi.class_i",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        best_bid_fen_per_kg=560,
        bids_resting=1,
        bid_depth_g=400_500,
        lots_resting=0,
        offered_g=0,
        last_price_fen_per_kg=550,
        volume_g=300_000,
        trades=1,
        vwap_fen_per_kg=550,
        previous_close_fen_per_kg=520,
        change_fen_per_kg=30,
        occurred_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    api.on_message(BOARD_UPDATES, line.book, line)
    assert api.feed.latest() == [line]
    board = client.get("/board/xizhoumi/class_i").json()
    assert (board["best_bid_yuan_per_kg"], board["bid_depth_kg"]) == ("5.60", "400.5")
    assert (board["last_price_yuan_per_kg"], board["change_yuan_per_kg"]) == ("5.50", "0.30")
    assert client.get("/board/ganmibao/extra").status_code == 404


def test_the_health_check_says_degraded_while_the_broker_does_not_answer(api: PricingApi) -> None:
    # Given an API whose broker stops answering
    def probe() -> None:
        raise ConnectionError("connection refused")

    api.broker = BrokerWatch("127.0.0.1:1", probe=probe)
    with TestClient(create_app(api)) as client:
        api.broker.look()
        # Then its health check says so, with the reason
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert "connection refused" in body["degraded"]["broker_unreachable"]


def test_a_bid_sent_before_a_restart_stays_pending_and_held_until_the_book_reports_it(
    client: TestClient, api: PricingApi
) -> None:
    # Given a bid that one API instance sent, read back from book.commands by a fresh one
    assert client.post("/bids", json=BID, headers=auth(LANZHOU)).status_code == 202
    [command] = sent(api)
    fresh = build_for_tests(api.accounts)
    fresh.on_message(BOOK_COMMANDS, "xizhoumi.class_i", command)
    with TestClient(create_app(fresh)) as restarted:
        # Then it shows as pending and holds its cost
        [bid] = restarted.get("/me/bids", headers=auth(LANZHOU)).json()
        assert (bid["bid_id"], bid["status"]) == ("B-1", "pending")
        assert restarted.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "2242.80"
        # and once the book reports it, it is what the book says, held once
        report(fresh, "B-1", "resting", 400_500)
        [bid] = restarted.get("/me/bids", headers=auth(LANZHOU)).json()
        assert bid["status"] == "resting"
        assert restarted.get("/me", headers=auth(LANZHOU)).json()["committed_yuan"] == "2242.80"


def test_a_bid_read_back_after_its_report_is_not_pending_again(api: PricingApi) -> None:
    # The readers take topics in no fixed order: the report may come before the command
    report(api, "B-9", "filled", 0, filled_g=400_500)
    bid = PlaceBid(
        correlation_id="B-9",
        bid_id="B-9",
        merchant_id="merchant-lanzhou",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        price_fen_per_kg=560,
        quantity_g=400_500,
    )
    api.on_message(BOOK_COMMANDS, "xizhoumi.class_i", bid)
    assert api.ledger.pending_of("merchant-lanzhou") == []
    account = api.accounts.get("merchant-lanzhou")
    assert account is not None
    assert api.credit.credit(account).committed_fen == 0
