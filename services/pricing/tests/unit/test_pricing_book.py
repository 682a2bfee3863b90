"""The order book's rules: price-time priority, reserve, pay-as-bid, whole crates, minimum lot,
amend, cancel, expiry, withdraw, per-lot reserve and duplicates."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from melon_contracts.commands import (
    AmendBid,
    BookCommand,
    CancelBid,
    OfferLot,
    PlaceBid,
    SetLotReserve,
    WithdrawLot,
)
from melon_contracts.reference import Grade
from pricing.domain.board import HALL_TIME
from pricing.domain.book import Book, crate_weight, crates_that_fit
from pricing.domain.errors import WrongBook
from pricing.domain.market import Outcome, apply

V, G = "xizhoumi", Grade.CLASS_I
OPEN = datetime(2025, 8, 1, 9, 0, tzinfo=HALL_TIME)


def at(minutes: float) -> datetime:
    return OPEN + timedelta(minutes=minutes)


def lot(lot_id: str, crates: int = 10, kg: int = 100, reserve: int = 400, t: float = 0) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        occurred_at=at(t),
        lot_id=lot_id,
        farmer_id=f"farmer-{lot_id}",
        variety=V,
        grade=G,
        crates=crates,
        net_g=kg * 1000,
        reserve_fen_per_kg=reserve,
    )


def bid(
    bid_id: str,
    price: int,
    kg: int,
    merchant: str = "m-1",
    min_lot_kg: int | None = None,
    expires: datetime | None = None,
    t: float = 0,
) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        occurred_at=at(t),
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
        price_fen_per_kg=price,
        quantity_g=kg * 1000,
        min_lot_g=None if min_lot_kg is None else min_lot_kg * 1000,
        destination="兰州",
        expires_at=expires,
    )


def amend(
    bid_id: str,
    price: int | None = None,
    kg: int | None = None,
    merchant: str = "m-1",
    t: float = 0,
) -> AmendBid:
    return AmendBid(
        correlation_id=bid_id,
        occurred_at=at(t),
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
        price_fen_per_kg=price,
        quantity_g=None if kg is None else kg * 1000,
    )


def cancel(bid_id: str, merchant: str = "m-1", t: float = 0) -> CancelBid:
    return CancelBid(
        correlation_id=bid_id,
        occurred_at=at(t),
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
    )


def withdraw(lot_id: str, t: float = 0) -> WithdrawLot:
    return WithdrawLot(
        correlation_id=lot_id,
        occurred_at=at(t),
        lot_id=lot_id,
        variety=V,
        grade=G,
        withdrawn_by="coop",
    )


def reserve(lot_id: str, price: int, t: float = 0) -> SetLotReserve:
    return SetLotReserve(
        correlation_id=lot_id,
        occurred_at=at(t),
        lot_id=lot_id,
        variety=V,
        grade=G,
        reserve_fen_per_kg=price,
        set_by="coop",
    )


def run(*commands: BookCommand, book: Book | None = None) -> tuple[Book, list[Outcome]]:
    outcomes = []
    for command in commands:
        outcome = apply(book, command)
        book = outcome.book
        outcomes.append(outcome)
    assert book is not None
    return book, outcomes


def trades(outcomes: list[Outcome]) -> list[tuple[str, str, int]]:
    return [(f.lot_id, f.bid_id, f.weight_g) for o in outcomes for f in o.fills]


def test_lot_goes_to_the_highest_bid_and_trades_at_that_bids_price() -> None:
    book, _ = run(bid("low", 500, 100), bid("high", 520, 100))
    outcome = apply(book, lot("L1"))
    assert [(f.bid_id, f.price_fen_per_kg) for f in outcome.fills] == [("high", 520)]
    assert outcome.fills[0].amount_fen == 52_000


def test_a_bid_arriving_after_the_lot_pays_its_own_price_not_the_reserve() -> None:
    _, outcomes = run(lot("L1", reserve=400), bid("b", 530, 10))
    [fill] = outcomes[-1].fills
    assert (fill.price_fen_per_kg, fill.reserve_fen_per_kg, fill.amount_fen) == (530, 400, 5_300)


def test_equal_prices_fill_in_arrival_order() -> None:
    _, outcomes = run(bid("first", 500, 100), bid("second", 500, 100), lot("L1"))
    assert trades(outcomes) == [("L1", "first", 100_000)]


def test_a_lot_walks_the_bids_from_the_best_price_down_to_its_reserve() -> None:
    book, outcomes = run(
        bid("a", 500, 60), bid("b", 530, 30), bid("c", 390, 100), lot("L1", reserve=400)
    )
    assert trades(outcomes) == [("L1", "b", 30_000), ("L1", "a", 60_000)]
    [rest] = book.lots()
    assert (rest.crates, rest.net_g) == (1, 10_000)
    assert [b.bid_id for b in book.bids()] == ["c"]


def test_a_bid_below_the_reserve_does_not_trade_and_rests() -> None:
    book, outcomes = run(lot("L1", reserve=450), bid("cheap", 449, 100))
    assert trades(outcomes) == []
    line = book.board()
    assert (line.best_bid_fen_per_kg, line.lots_resting, line.bids_resting) == (449, 1, 1)


def test_a_bid_fills_across_lots_in_arrival_order_until_its_quantity_is_met() -> None:
    book, outcomes = run(lot("L1", 10, 100), lot("L2", 10, 100), bid("b", 500, 150))
    assert trades(outcomes) == [("L1", "b", 100_000), ("L2", "b", 50_000)]
    assert book.board().offered_g == 50_000


def test_a_bid_skips_lots_whose_reserve_is_above_its_price() -> None:
    _, outcomes = run(lot("L1", reserve=600), lot("L2", reserve=450), bid("b", 500, 50))
    assert trades(outcomes) == [("L2", "b", 50_000)]


def test_lots_trade_in_whole_crates_so_a_bid_may_keep_a_remainder() -> None:
    book, outcomes = run(lot("L1", crates=10, kg=100), bid("b", 500, 25))
    assert trades(outcomes) == [("L1", "b", 20_000)]
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
        (7, 3, 2, 6),
    ],
)
def test_crates_that_fit_is_the_most_whole_crates_within_the_wanted_weight(
    crates_left: int, net_g: int, wanted_g: int, crates: int
) -> None:
    assert crates_that_fit(crates_left, net_g, wanted_g) == crates
    assert crate_weight(crates_left, net_g, crates) <= wanted_g
    if crates < crates_left:
        assert crate_weight(crates_left, net_g, crates + 1) > wanted_g


def test_weights_sold_from_a_lot_add_up_to_its_weighed_weight() -> None:
    bids = [bid(f"b{i}", 500, 15) for i in range(20)]
    _, outcomes = run(lot("L1", crates=7, kg=100), *bids)
    assert sum(weight for _, _, weight in trades(outcomes)) == 100_000
    assert sum(f.crates for o in outcomes for f in o.fills) == 7


@pytest.mark.parametrize(
    ("min_lot_kg", "quantity_kg", "lots", "expected"),
    [
        pytest.param(50, 100, [(4, 40)], [], id="lot-smaller-than-min-lot"),
        pytest.param(50, 40, [(10, 100)], [("L1", 40)], id="min-lot-above-quantity-all-or-none"),
        pytest.param(30, 100, [(5, 50)], [("L1", 50)], id="fill-at-least-the-min-lot"),
        pytest.param(50, 100, [(4, 40), (10, 100)], [("L2", 100)], id="small-lot-passed-over"),
        pytest.param(50, 120, [(10, 100), (10, 100)], [("L1", 100), ("L2", 20)], id="tail-exact"),
        pytest.param(50, 125, [(10, 100), (10, 100)], [("L1", 100)], id="tail-cannot-complete"),
        pytest.param(None, 125, [(10, 100), (10, 100)], [("L1", 100), ("L2", 20)], id="no-min"),
    ],
)
def test_a_fill_weighs_at_least_the_minimum_lot_or_completes_the_bid(
    min_lot_kg: int | None,
    quantity_kg: int,
    lots: list[tuple[int, int]],
    expected: list[tuple[str, int]],
) -> None:
    offers = [lot(f"L{i}", crates, kg) for i, (crates, kg) in enumerate(lots, start=1)]
    _, outcomes = run(*offers, bid("b", 500, quantity_kg, min_lot_kg=min_lot_kg))
    assert [(lot_id, g // 1000) for lot_id, _, g in trades(outcomes)] == expected


def test_a_lot_passes_over_a_bid_whose_minimum_lot_it_cannot_give() -> None:
    book, outcomes = run(
        bid("big", 600, 100, min_lot_kg=50), bid("small", 500, 100), lot("L1", 4, 40)
    )
    assert trades(outcomes) == [("L1", "small", 40_000)]
    assert [b.bid_id for b in book.bids()] == ["big", "small"]


def test_a_lot_partly_sold_goes_on_to_a_minimum_lot_bid_it_can_now_complete() -> None:
    # 3 crates of 100 kg give 33 333 g, 66 666 g or all 100 000 g. "exact" wants 33 334 g with a
    # 50 kg minimum, so it cannot trade until "other" takes two crates and leaves the last crate,
    # which holds the remainder: 33 334 g, exactly what completes "exact".
    exact = bid("exact", 600, 1, min_lot_kg=50).model_copy(update={"quantity_g": 33_334})
    other = bid("other", 500, 1).model_copy(update={"quantity_g": 66_666})
    book, outcomes = run(exact, lot("L1", crates=3, kg=100), other)
    assert trades(outcomes) == [("L1", "other", 66_666), ("L1", "exact", 33_334)]
    assert [s.status for s in outcomes[-1].bid_updates] == ["filled", "filled"]
    assert book.lots() == [] and book.bids() == []


def test_a_bid_partly_filled_goes_on_to_a_lot_that_now_completes_it() -> None:
    # "b" wants 100 kg, at least 50 kg a fill: L1's 40 kg is too little until L2 sells it 60 kg.
    _, outcomes = run(lot("L1", 4, 40), bid("b", 500, 100, min_lot_kg=50), lot("L2", 6, 60))
    assert trades(outcomes) == [("L2", "b", 60_000), ("L1", "b", 40_000)]
    assert [s.status for s in outcomes[-1].bid_updates] == ["filled"]


@pytest.mark.parametrize(("new_price", "first"), [(510, "b"), (520, "a")])
def test_an_amended_price_goes_to_the_back_of_the_queue_at_the_new_price(
    new_price: int, first: str
) -> None:
    _, outcomes = run(
        bid("a", 500, 50), bid("b", 510, 50), amend("a", price=new_price), lot("L1", 5, 50)
    )
    assert trades(outcomes) == [("L1", first, 50_000)]


@pytest.mark.parametrize(("new_kg", "first"), [(60, "b"), (40, "a"), (50, "a")])
def test_a_larger_quantity_loses_the_place_a_smaller_one_keeps_it(new_kg: int, first: str) -> None:
    _, outcomes = run(bid("a", 500, 50), bid("b", 500, 50), amend("a", kg=new_kg), lot("L1", 5, 50))
    assert trades(outcomes)[0][1] == first


def test_amend_sets_the_remaining_quantity_and_the_quantity_counts_what_was_filled() -> None:
    _, outcomes = run(bid("a", 500, 100), lot("L1", 3, 30), amend("a", kg=50))
    [state] = outcomes[-1].bid_updates
    assert (state.status, state.quantity_g, state.filled_g, state.remaining_g) == (
        "resting",
        80_000,
        30_000,
        50_000,
    )
    assert state.amount_fen == 15_000


def test_an_amend_that_reaches_a_resting_lot_trades_at_once_at_the_new_price() -> None:
    _, outcomes = run(lot("L1", reserve=450), bid("a", 440, 20), amend("a", price=460))
    assert [(f.bid_id, f.price_fen_per_kg, f.weight_g) for f in outcomes[-1].fills] == [
        ("a", 460, 20_000)
    ]
    assert outcomes[-1].bid_updates[0].status == "filled"


def test_a_smaller_quantity_can_complete_a_minimum_lot_bid_at_once() -> None:
    _, outcomes = run(bid("a", 500, 100, min_lot_kg=50), lot("L1", 4, 40), amend("a", kg=40))
    assert trades(outcomes) == [("L1", "a", 40_000)]


def test_an_amend_that_changes_nothing_changes_nothing() -> None:
    book, _ = run(bid("a", 500, 50), bid("b", 500, 50))
    outcome = apply(book, amend("a", price=500, kg=50))
    assert (outcome.changed, outcome.rejection) == (False, None)
    assert [b.bid_id for b in book.bids()] == ["a", "b"]
    assert [s.status for s in outcome.bid_updates] == ["resting"]


def test_a_cancelled_bid_no_longer_trades() -> None:
    _, outcomes = run(bid("b", 500, 50), cancel("b"), lot("L1"))
    assert trades(outcomes) == []
    [state] = outcomes[1].bid_updates
    assert (state.status, state.remaining_g, state.reason) == ("cancelled", 0, "cancelled by m-1")


FILLED = (bid("f", 500, 10), lot("L1", 1, 10))


@pytest.mark.parametrize(
    ("setup", "command", "reason", "reported"),
    [
        pytest.param(
            [bid("b", 500, 50)], cancel("b", "m-2"), "another merchant", None, id="cancel-other"
        ),
        pytest.param(
            [bid("b", 500, 50)],
            amend("b", 510, merchant="m-2"),
            "another merchant",
            None,
            id="amend-other",
        ),
        pytest.param([], cancel("nope"), "not on book", None, id="cancel-unknown"),
        pytest.param([], amend("nope", 510), "not on book", None, id="amend-unknown"),
        pytest.param(list(FILLED), cancel("f"), "filled already", "filled", id="cancel-filled"),
        pytest.param(list(FILLED), amend("f", kg=5), "filled already", "filled", id="amend-filled"),
        pytest.param(
            list(FILLED), cancel("f", "m-2"), "another merchant", None, id="cancel-other-filled"
        ),
        pytest.param(
            [bid("b", 500, 50), cancel("b")],
            cancel("b"),
            "cancelled already",
            "cancelled",
            id="cancel-twice",
        ),
        pytest.param(
            [bid("b", 500, 50, expires=at(30)), lot("L2", reserve=900, t=31)],
            amend("b", 510, t=32),
            "expired already",
            "expired",
            id="amend-expired",
        ),
        pytest.param(
            [bid("b", 500, 50)],
            amend("b"),
            "neither a price nor a quantity",
            "resting",
            id="amend-nothing",
        ),
    ],
)
def test_a_refused_amend_or_cancel_names_why_and_reports_only_the_merchants_own_bid(
    setup: list[BookCommand], command: BookCommand, reason: str, reported: str | None
) -> None:
    book, _ = run(lot("L0", reserve=900), *setup)
    before = book.to_dict()
    outcome = apply(book, command)
    assert outcome.rejection is not None and reason in outcome.rejection
    assert not outcome.changed and not outcome.duplicate
    assert outcome.book.to_dict() == before
    assert [s.status for s in outcome.bid_updates] == ([] if reported is None else [reported])
    for state in outcome.bid_updates:
        assert state.reason == outcome.rejection


@pytest.mark.parametrize(("lot_minute", "traded"), [(59, True), (60, False), (61, False)])
def test_a_bid_leaves_the_book_when_a_command_reaches_its_expiry(
    lot_minute: float, traded: bool
) -> None:
    book, _ = run(bid("b", 500, 50, expires=at(60)))
    outcome = apply(book, lot("L1", t=lot_minute))
    assert bool(outcome.fills) is traded
    if not traded:
        expired = outcome.bid_updates[0]
        assert (expired.bid_id, expired.status, expired.remaining_g) == ("b", "expired", 0)
        assert expired.reason == "expired at 2025-08-01T10:00:00+08:00"
        assert outcome.book.board().bids_resting == 0


def test_expiry_applies_before_a_duplicate_too() -> None:
    book, _ = run(lot("L1", reserve=900), bid("b", 500, 50, expires=at(60)))
    outcome = apply(book, lot("L1", reserve=900, t=90))
    assert outcome.duplicate and outcome.changed
    assert [(s.bid_id, s.status) for s in outcome.bid_updates] == [("b", "expired")]


@pytest.mark.parametrize("minutes", [0, -1])
def test_a_bid_that_expires_before_it_is_placed_is_rejected_and_never_rests(
    minutes: float,
) -> None:
    book, outcomes = run(lot("L1"), bid("b", 500, 50, expires=at(minutes), t=0))
    outcome = outcomes[-1]
    assert outcome.rejection is not None and "not after it was placed" in outcome.rejection
    assert outcome.fills == [] and not outcome.changed
    [state] = outcome.bid_updates
    assert (state.status, state.quantity_g, state.remaining_g) == ("rejected", 50_000, 0)
    assert book.bids() == [] and not book.remembers_bid("b")


def test_a_withdrawn_lot_leaves_the_book_with_what_was_left_of_it() -> None:
    book, outcomes = run(lot("L1", 10, 100), bid("a", 500, 30), withdraw("L1"), bid("b", 500, 50))
    assert trades(outcomes) == [("L1", "a", 30_000)]
    assert outcomes[2].changed
    line = book.board()
    assert (line.lots_resting, line.offered_g, line.bids_resting) == (0, 0, 1)


@pytest.mark.parametrize(
    ("setup", "command", "reason"),
    [
        ([lot("L1"), withdraw("L1")], withdraw("L1"), "withdrawn already"),
        ([lot("L1"), bid("b", 500, 100)], withdraw("L1"), "sold already"),
        ([lot("L1"), bid("b", 500, 100)], reserve("L1", 450), "sold already"),
        ([], withdraw("L9"), "not on book"),
        ([], reserve("L9", 450), "not on book"),
    ],
)
def test_a_lot_command_for_a_lot_not_resting_is_refused(
    setup: list[BookCommand], command: BookCommand, reason: str
) -> None:
    book, _ = run(bid("x", 100, 1), *setup)
    outcome = apply(book, command)
    assert outcome.rejection is not None and reason in outcome.rejection
    assert not outcome.changed and outcome.bid_updates == []


def test_a_lowered_reserve_lets_a_resting_lot_trade_at_the_bids_price() -> None:
    _, outcomes = run(lot("L1", reserve=500), bid("b", 450, 20), reserve("L1", 440))
    [fill] = outcomes[-1].fills
    assert (fill.price_fen_per_kg, fill.reserve_fen_per_kg, fill.weight_g) == (450, 440, 20_000)


def test_a_raised_reserve_stops_a_lot_trading_below_it() -> None:
    _, outcomes = run(lot("L1", reserve=400), reserve("L1", 600), bid("b", 550, 20))
    assert trades(outcomes) == []


def test_a_lot_keeps_its_place_when_its_reserve_changes() -> None:
    _, outcomes = run(
        lot("L1", reserve=500), lot("L2", reserve=400), reserve("L1", 420), bid("b", 450, 10)
    )
    assert trades(outcomes) == [("L1", "b", 10_000)]


@pytest.mark.parametrize(
    ("commands", "duplicates"),
    [
        pytest.param(
            [lot("L1"), bid("b", 500, 50), bid("b", 500, 50), lot("L1")], [2, 3], id="resting"
        ),
        pytest.param(
            [lot("L1"), bid("b", 500, 100), lot("L1"), bid("b", 500, 100)], [2, 3], id="finished"
        ),
        pytest.param(
            [lot("L1", reserve=900), bid("b", 500, 50), cancel("b"), bid("b", 500, 50)],
            [3],
            id="cancelled",
        ),
    ],
)
def test_a_lot_or_bid_delivered_twice_has_one_effect(
    commands: list[BookCommand], duplicates: list[int]
) -> None:
    _, outcomes = run(*commands)
    assert len(trades(outcomes)) <= 1
    assert [i for i, o in enumerate(outcomes) if o.duplicate] == duplicates
    for i in duplicates:
        assert outcomes[i].fills == [] and outcomes[i].bid_updates == []
        assert not outcomes[i].changed


def test_a_command_for_another_book_is_a_routing_fault() -> None:
    book, _ = run(lot("L1"))
    other = bid("b", 500, 10).model_copy(update={"grade": Grade.EXTRA})
    with pytest.raises(WrongBook):
        apply(book, other)


def test_a_fill_carries_everything_a_trade_event_needs() -> None:
    _, outcomes = run(bid("b", 512, 30), lot("L1", 10, 100, reserve=480))
    [fill] = outcomes[-1].fills
    assert fill.trade_id == "xizhoumi.class_i:1"
    assert (fill.book, fill.variety, fill.grade, fill.sequence) == (
        "xizhoumi.class_i",
        V,
        G,
        1,
    )
    assert (fill.lot_id, fill.farmer_id, fill.bid_id, fill.merchant_id) == (
        "L1",
        "farmer-L1",
        "b",
        "m-1",
    )
    assert (fill.crates, fill.weight_g, fill.amount_fen, fill.destination) == (
        3,
        30_000,
        15_360,
        "兰州",
    )
