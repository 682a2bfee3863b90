"""The board's arithmetic: trading day, VWAP, change against the previous close, depth."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from melon_contracts.commands import BookCommand, OfferLot, PlaceBid
from melon_contracts.reference import Grade
from pricing.domain.board import (
    HALL_TIME,
    DepthLevel,
    Tape,
    change_fen_per_kg,
    trading_day,
    vwap_fen_per_kg,
)
from pricing.domain.book import Book
from pricing.domain.market import Outcome, apply

V, G = "ganmibao", Grade.EXTRA


def lot(lot_id: str, kg: int, at: datetime, reserve: int = 100) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        occurred_at=at,
        lot_id=lot_id,
        farmer_id="f-1",
        variety=V,
        grade=G,
        crates=kg,
        net_g=kg * 1000,
        reserve_fen_per_kg=reserve,
    )


def bid(bid_id: str, price: int, kg: int, at: datetime) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        occurred_at=at,
        bid_id=bid_id,
        merchant_id="m-1",
        variety=V,
        grade=G,
        price_fen_per_kg=price,
        quantity_g=kg * 1000,
    )


def hall(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, 8, day, hour, minute, second, tzinfo=HALL_TIME)


def run(*commands: BookCommand) -> list[Outcome]:
    book: Book | None = None
    outcomes = []
    for command in commands:
        outcome = apply(book, command)
        book = outcome.book
        outcomes.append(outcome)
    return outcomes


@pytest.mark.parametrize(
    ("amount_fen", "volume_g", "vwap"),
    [
        (0, 0, None),
        (52_000, 100_000, 520),
        (1, 1_000, 1),
        (4, 10_000, 0),  # 0.4 fen/kg
        (5, 10_000, 1),  # 0.5 rounds half up
        (15, 10_000, 2),  # 1.5
        (25, 10_000, 3),  # 2.5: half up, not to even
        (13_333, 33_333, 400),  # 399.99
        (1, 3, 333),  # 333.33
        (2, 3, 667),  # 666.67
        (76_500, 150_000, 510),
    ],
)
def test_vwap_is_fen_per_kg_rounded_half_up(amount_fen: int, volume_g: int, vwap: int) -> None:
    assert vwap_fen_per_kg(amount_fen, volume_g) == vwap


@pytest.mark.parametrize(
    ("last", "previous_close", "change"),
    [(None, None, None), (500, None, None), (None, 500, None), (520, 500, 20), (480, 500, -20)],
)
def test_change_is_the_last_price_against_the_previous_close(
    last: int | None, previous_close: int | None, change: int | None
) -> None:
    assert change_fen_per_kg(last, previous_close) == change


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (datetime(2025, 8, 1, 15, 59, 59, tzinfo=UTC), date(2025, 8, 1)),
        (datetime(2025, 8, 1, 16, 0, 0, tzinfo=UTC), date(2025, 8, 2)),
        (datetime(2025, 8, 1, 0, 0, tzinfo=HALL_TIME), date(2025, 8, 1)),
        (datetime(2025, 7, 31, 23, 59, tzinfo=HALL_TIME), date(2025, 7, 31)),
        (datetime(2025, 12, 31, 16, 30, tzinfo=UTC), date(2026, 1, 1)),
    ],
)
def test_the_trading_day_is_the_calendar_day_in_the_hall(at: datetime, day: date) -> None:
    assert trading_day(at) == day


def test_a_time_without_a_zone_has_no_trading_day() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        trading_day(datetime(2025, 8, 1, 9, 0))


def test_the_tape_keeps_the_close_of_the_last_day_that_traded() -> None:
    tape = Tape()
    assert tape.roll(date(2025, 8, 1))
    tape.record(10_000, 5_000, 500)
    tape.record(10_000, 5_200, 520)
    assert not tape.roll(date(2025, 8, 1))
    assert not tape.roll(date(2025, 7, 31)), "the day never goes back"
    assert tape.roll(date(2025, 8, 2))
    assert (tape.previous_close_fen_per_kg, tape.change_fen_per_kg) == (520, 0)
    assert tape.roll(date(2025, 8, 3))
    assert tape.previous_close_fen_per_kg == 520, "a day without trades keeps the close"
    tape.record(10_000, 4_900, 490)
    assert (tape.high_fen_per_kg, tape.low_fen_per_kg, tape.change_fen_per_kg) == (490, 490, -30)
    assert Tape.from_dict(tape.to_dict()) == tape


def test_day_figures_roll_over_at_midnight_in_the_hall() -> None:
    outcomes = run(
        bid("a", 500, 100, hall(1, 9)),
        lot("L1", 100, hall(1, 9, 5)),  # 100 kg at 500
        bid("b", 530, 50, hall(1, 23, 59, 59)),
        lot("L2", 50, hall(1, 23, 59, 59)),  # 50 kg at 530, still day 1
        bid("c", 400, 10, hall(2, 0)),  # day 2, no trade yet
        bid("d", 540, 10, hall(2, 10)),
        lot("L3", 20, hall(2, 10, 1)),  # 10 kg at 540 to d, 10 kg at 400 to c
        bid("e", 300, 10, hall(3, 9)),  # day 3 trades nothing
        bid("f", 530, 10, hall(4, 9)),
        lot("L4", 10, hall(4, 9, 1)),  # 10 kg at 530
    )
    figures = [
        (
            o.board.trading_day,
            o.board.high_fen_per_kg,
            o.board.low_fen_per_kg,
            o.board.vwap_fen_per_kg,
            o.board.volume_g_today,
            o.board.amount_fen_today,
            o.board.trades_today,
            o.board.previous_close_fen_per_kg,
            o.board.last_price_fen_per_kg,
            o.board.change_fen_per_kg,
        )
        for o in outcomes
    ]
    day1, day2, day3, day4 = (date(2025, 8, d) for d in (1, 2, 3, 4))
    assert figures == [
        (day1, None, None, None, 0, 0, 0, None, None, None),
        (day1, 500, 500, 500, 100_000, 50_000, 1, None, 500, None),
        (day1, 500, 500, 500, 100_000, 50_000, 1, None, 500, None),
        (day1, 530, 500, 510, 150_000, 76_500, 2, None, 530, None),
        (day2, None, None, None, 0, 0, 0, 530, 530, 0),
        (day2, None, None, None, 0, 0, 0, 530, 530, 0),
        (day2, 540, 400, 470, 20_000, 9_400, 2, 530, 400, -130),
        (day3, None, None, None, 0, 0, 0, 400, 400, 0),
        (day4, None, None, None, 0, 0, 0, 400, 400, 0),
        (day4, 530, 530, 530, 10_000, 5_300, 1, 400, 530, 130),
    ]
    last = outcomes[-1].board
    assert (last.volume_g, last.trades) == (180_000, 5)


def test_a_new_day_alone_changes_the_board_line() -> None:
    _, duplicate = run(lot("L1", 10, hall(1, 9), reserve=900), lot("L1", 10, hall(2, 9)))
    assert duplicate.duplicate and duplicate.changed
    assert duplicate.board.trading_day == date(2025, 8, 2)


def test_depth_shows_the_five_best_prices_with_their_bids_and_weight() -> None:
    start = hall(1, 9)
    prices = [500, 510, 490, 530, 520, 480, 510]
    commands = [bid(f"b{i}", p, 10 + i, start) for i, p in enumerate(prices)]
    line = run(lot("L1", 10, start, reserve=900), *commands)[-1].board
    assert line.depth == (
        DepthLevel(530, 1, 13_000),
        DepthLevel(520, 1, 14_000),
        DepthLevel(510, 2, 27_000),
        DepthLevel(500, 1, 10_000),
        DepthLevel(490, 1, 12_000),
    )
    assert (line.best_bid_fen_per_kg, line.bids_resting, line.bid_depth_g) == (530, 7, 91_000)
    assert (line.lots_resting, line.offered_g) == (1, 10_000)


def test_depth_follows_the_fills() -> None:
    start = hall(1, 9)
    outcomes = run(
        bid("a", 520, 30, start),
        bid("b", 520, 30, start),
        bid("c", 500, 30, start),
        lot("L1", 40, start + timedelta(minutes=1)),  # a filled, b 10 kg
    )
    assert outcomes[-1].board.depth == (DepthLevel(520, 1, 20_000), DepthLevel(500, 1, 30_000))
    assert outcomes[-1].board == outcomes[-1].book.board()
