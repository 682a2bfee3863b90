"""The order book: price-time priority, reserve, whole crates, partial fills, idempotency."""

from __future__ import annotations

import pytest

from melon_contracts.commands import CancelBid, OfferLot, PlaceBid
from melon_contracts.reference import Grade
from pricing.domain.book import Book, crate_weight, crates_that_fit
from pricing.domain.market import apply

V, G = "xizhoumi", Grade.CLASS_I


def lot(lot_id: str, crates: int = 10, kg: int = 100, reserve: int = 400) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        lot_id=lot_id,
        farmer_id=f"farmer-{lot_id}",
        variety=V,
        grade=G,
        crates=crates,
        net_g=kg * 1000,
        reserve_fen_per_kg=reserve,
    )


def bid(bid_id: str, price: int, kg: int, merchant: str = "m-1") -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
        price_fen_per_kg=price,
        quantity_g=kg * 1000,
        destination="兰州",
    )


def run(
    *commands: OfferLot | PlaceBid | CancelBid,
) -> tuple[Book | None, list[tuple[str, str, int]]]:
    book: Book | None = None
    trades: list[tuple[str, str, int]] = []
    for command in commands:
        outcome = apply(book, command)
        book = outcome.book
        trades += [(f.lot_id, f.bid_id, f.weight_g) for f in outcome.fills]
    return book, trades


def test_lot_goes_to_the_highest_bid_and_trades_at_that_bids_price() -> None:
    book, _ = run(bid("low", 500, 100), bid("high", 520, 100))
    outcome = apply(book, lot("L1"))
    assert [(f.bid_id, f.price_fen_per_kg) for f in outcome.fills] == [("high", 520)]
    assert outcome.fills[0].amount_fen == 52_000


def test_equal_prices_fill_in_arrival_order() -> None:
    _, trades = run(bid("first", 500, 100), bid("second", 500, 100), lot("L1"))
    assert trades == [("L1", "first", 100_000)]


def test_a_bid_below_the_reserve_does_not_trade_and_rests() -> None:
    book, trades = run(lot("L1", reserve=450), bid("cheap", 449, 100))
    assert trades == []
    assert book is not None
    line = book.board()
    assert (line.best_bid_fen_per_kg, line.lots_resting, line.bids_resting) == (449, 1, 1)


def test_a_bid_fills_across_lots_in_arrival_order_until_its_quantity_is_met() -> None:
    book, trades = run(lot("L1", 10, 100), lot("L2", 10, 100), bid("b", 500, 150))
    assert trades == [("L1", "b", 100_000), ("L2", "b", 50_000)]
    assert book is not None
    assert book.board().offered_g == 50_000


def test_lots_trade_in_whole_crates_so_a_bid_may_keep_a_remainder() -> None:
    book, trades = run(lot("L1", crates=10, kg=100), bid("b", 500, 25))
    assert trades == [("L1", "b", 20_000)]
    assert book is not None
    assert book.board().bid_depth_g == 5_000


@pytest.mark.parametrize(
    ("crates_left", "net_g", "taken", "weight"),
    [
        (10, 100_000, 10, 100_000),
        (10, 100_000, 3, 30_000),
        (3, 100_000, 1, 33_333),
        (3, 100_000, 2, 66_666),
        (7, 1, 6, 0),
    ],
)
def test_crate_weight_shares_out_grams_and_the_last_crate_takes_the_rest(
    crates_left: int, net_g: int, taken: int, weight: int
) -> None:
    assert crate_weight(crates_left, net_g, taken) == weight


@pytest.mark.parametrize(
    ("crates_left", "net_g", "wanted_g", "crates"),
    [
        (10, 100_000, 25_000, 2),
        (10, 100_000, 9_999, 0),
        (3, 100_000, 33_333, 1),
        (3, 100_000, 10**9, 3),
    ],
)
def test_crates_that_fit_is_the_most_whole_crates_within_the_wanted_weight(
    crates_left: int, net_g: int, wanted_g: int, crates: int
) -> None:
    assert crates_that_fit(crates_left, net_g, wanted_g) == crates
    assert crate_weight(crates_left, net_g, crates) <= wanted_g or crates == 0


def test_weights_sold_from_a_lot_add_up_to_its_weighed_weight() -> None:
    bids = [bid(f"b{i}", 500, 15) for i in range(20)]
    _, trades = run(lot("L1", crates=7, kg=100), *bids)
    assert sum(weight for _, _, weight in trades) == 100_000


def test_a_command_delivered_twice_has_one_effect() -> None:
    _, trades = run(lot("L1"), bid("b", 500, 50), bid("b", 500, 50), lot("L1"))
    assert trades == [("L1", "b", 50_000)]


def test_a_cancelled_bid_no_longer_trades() -> None:
    cancel = CancelBid(correlation_id="b", bid_id="b", merchant_id="m-1", variety=V, grade=G)
    _, trades = run(bid("b", 500, 50), cancel, lot("L1"))
    assert trades == []


def test_a_merchant_cannot_cancel_another_merchants_bid() -> None:
    book, _ = run(bid("b", 500, 50, merchant="m-1"))
    other = CancelBid(correlation_id="b", bid_id="b", merchant_id="m-2", variety=V, grade=G)
    outcome = apply(book, other)
    assert outcome.rejection is not None
    assert outcome.book.board().bids_resting == 1


def test_replaying_the_same_commands_gives_the_same_trades_and_ids() -> None:
    commands = [
        lot("L1", 9, 95),
        bid("a", 510, 40),
        bid("b", 520, 30),
        lot("L2", 4, 41),
        bid("c", 515, 70),
    ]
    first = [apply_all_trade_ids(commands)]
    second = [apply_all_trade_ids(commands)]
    assert first == second


def apply_all_trade_ids(commands: list[OfferLot | PlaceBid]) -> list[tuple[str, str, str, int]]:
    book: Book | None = None
    ids = []
    for command in commands:
        outcome = apply(book, command)
        book = outcome.book
        ids += [(f.trade_id, f.lot_id, f.bid_id, f.weight_g) for f in outcome.fills]
    return ids


def test_a_book_survives_a_round_trip_through_its_stored_form() -> None:
    book, _ = run(lot("L1", 9, 95), bid("a", 510, 40), bid("b", 300, 30))
    assert book is not None
    restored = Book.from_dict(book.to_dict())
    assert restored == book
    assert apply(restored, lot("L1")).duplicate
