"""``market.apply`` as the matcher sees it: outcomes, determinism under replay, invariants on
random command streams, the stored form and its bounded dedupe window."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

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
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, BoardUpdated, TradeExecuted
from melon_contracts.events import DepthLevel as ContractDepthLevel
from melon_contracts.reference import Grade, book_key
from melon_contracts.units import amount_fen
from pricing.domain.board import DEPTH_LEVELS, HALL_TIME, BoardLine, DepthLevel
from pricing.domain.book import BidState, Book, Fill, crate_weight, crates_that_fit, micros
from pricing.domain.market import Outcome, apply

V, G = "yujinxiang", Grade.CLASS_II
KEY = book_key(V, G)
OPEN = datetime(2025, 8, 1, 7, 0, tzinfo=HALL_TIME)
MERCHANTS = ["m-1", "m-2", "m-3", "m-4"]


def offer(lot_id: str, crates: int, net_g: int, reserve: int, at: datetime) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        occurred_at=at,
        lot_id=lot_id,
        farmer_id=f"f-{lot_id}",
        variety=V,
        grade=G,
        crates=crates,
        net_g=net_g,
        reserve_fen_per_kg=reserve,
    )


def place(
    bid_id: str, price: int, quantity_g: int, at: datetime, merchant: str = "m-1", **extra: Any
) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        occurred_at=at,
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
        price_fen_per_kg=price,
        quantity_g=quantity_g,
        **extra,
    )


def cancel(bid_id: str, at: datetime, merchant: str = "m-1") -> CancelBid:
    return CancelBid(
        correlation_id=bid_id,
        occurred_at=at,
        bid_id=bid_id,
        merchant_id=merchant,
        variety=V,
        grade=G,
    )


def random_commands(seed: int, count: int) -> list[BookCommand]:
    """A seeded mix of every book command over about a week, with redeliveries, late clocks,
    other merchants' cancels, tiny lots, minimum lots and expiries."""
    rng = random.Random(seed)
    now = OPEN
    commands: list[BookCommand] = []
    lots: list[str] = []
    bids: list[tuple[str, str]] = []
    for n in range(count):
        now += timedelta(minutes=rng.choice([0, 0, 1, 5, 30, 90]))
        at = now - timedelta(seconds=rng.choice([0, 0, 0, 0, 40]))
        roll = rng.random()
        if commands and roll < 0.05:
            commands.append(rng.choice(commands[-10:]))
            continue
        if roll < 0.25 or not lots:
            crates = rng.randint(1, 12)
            shape = rng.random()
            if shape < 0.05:
                net_g = rng.randint(1, 50)
            elif shape < 0.5:
                net_g = rng.randint(crates, crates * 15_000)
            else:
                net_g = crates * rng.choice([5_000, 8_000, 10_000])
            lots.append(f"L{n}")
            commands.append(offer(f"L{n}", crates, net_g, rng.randrange(400, 530, 10), at))
        elif roll < 0.6 or not bids:
            merchant = rng.choice(MERCHANTS)
            extra: dict[str, Any] = {"destination": rng.choice(["", "兰州", "上海"])}
            extra["cold_chain"] = rng.random() < 0.3
            if rng.random() < 0.4:
                extra["min_lot_g"] = rng.randint(5_000, 80_000)
            if rng.random() < 0.5:
                extra["expires_at"] = at + timedelta(minutes=rng.randint(-60, 600))
            bids.append((f"B{n}", merchant))
            price = rng.randrange(380, 570, 10)
            quantity = rng.choice(
                [rng.randint(1_000, 150_000), rng.randrange(5_000, 150_000, 5_000)]
            )
            commands.append(place(f"B{n}", price, quantity, at, merchant, **extra))
        elif roll < 0.72:
            bid_id, owner = rng.choice(bids[-30:])
            merchant = owner if rng.random() < 0.85 else rng.choice(MERCHANTS)
            new_price = rng.choice([None, rng.randrange(380, 570, 10)])
            new_quantity = rng.choice([None, rng.randint(1_000, 150_000)])
            commands.append(
                AmendBid(
                    correlation_id=bid_id,
                    occurred_at=at,
                    bid_id=bid_id,
                    merchant_id=merchant,
                    variety=V,
                    grade=G,
                    price_fen_per_kg=new_price,
                    quantity_g=new_quantity,
                )
            )
        elif roll < 0.82:
            bid_id, owner = rng.choice(bids[-30:])
            merchant = owner if rng.random() < 0.85 else rng.choice(MERCHANTS)
            commands.append(cancel(bid_id, at, merchant))
        elif roll < 0.9:
            lot_id = rng.choice(lots[-20:])
            commands.append(
                WithdrawLot(
                    correlation_id=lot_id,
                    occurred_at=at,
                    lot_id=lot_id,
                    variety=V,
                    grade=G,
                    withdrawn_by="coop",
                )
            )
        else:
            lot_id = rng.choice(lots[-20:])
            commands.append(
                SetLotReserve(
                    correlation_id=lot_id,
                    occurred_at=at,
                    lot_id=lot_id,
                    variety=V,
                    grade=G,
                    reserve_fen_per_kg=rng.randrange(380, 560, 10),
                    set_by="coop",
                )
            )
    return commands


def observed(outcome: Outcome) -> tuple[Any, ...]:
    """Everything an outcome says, without the book object itself."""
    return (
        outcome.fills,
        outcome.bid_updates,
        outcome.board,
        outcome.changed,
        outcome.duplicate,
        outcome.rejection,
    )


def replay(commands: list[BookCommand], *, store_between: bool) -> list[tuple[Any, ...]]:
    book: Book | None = None
    seen = []
    for command in commands:
        if store_between and book is not None:
            stored = json.loads(json.dumps(book.to_dict()))
            book = Book.from_dict(stored)
            assert book.to_dict() == stored
        outcome = apply(book, command)
        book = outcome.book
        seen.append(observed(outcome))
    return seen


SEEDS = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("seed", SEEDS)
def test_replaying_a_command_stream_gives_the_same_trades_bid_states_and_board_lines(
    seed: int,
) -> None:
    commands = random_commands(seed, 400)
    first = replay(commands, store_between=False)
    assert replay(commands, store_between=False) == first
    assert replay(commands, store_between=True) == first
    assert sum(len(fills) for fills, *_ in first) > 20, "the stream should trade"


@dataclass
class Ledger:
    """What the test knows independently of the book, from commands and fills alone."""

    offered: dict[str, tuple[int, int]] = field(default_factory=dict)
    sold: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    reserve: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    withdrawn: set[str] = field(default_factory=set)
    sequence: int = 0


def check_outcome(ledger: Ledger, command: BookCommand, outcome: Outcome) -> None:
    if isinstance(command, OfferLot) and not outcome.duplicate:
        assert command.lot_id not in ledger.offered
        ledger.offered[command.lot_id] = (command.crates, command.net_g)
        ledger.reserve[command.lot_id] = command.reserve_fen_per_kg
    if isinstance(command, SetLotReserve) and outcome.rejection is None:
        ledger.reserve[command.lot_id] = command.reserve_fen_per_kg
    if isinstance(command, WithdrawLot) and outcome.rejection is None:
        ledger.withdrawn.add(command.lot_id)
    states = {state.bid_id: state for state in outcome.bid_updates}
    assert len(states) == len(outcome.bid_updates), "one state per bid"
    for fill in outcome.fills:
        ledger.sequence += 1
        assert (fill.sequence, fill.trade_id) == (ledger.sequence, f"{KEY}:{ledger.sequence}")
        assert fill.weight_g > 0 and fill.crates >= 1
        assert fill.reserve_fen_per_kg == ledger.reserve[fill.lot_id]
        assert fill.price_fen_per_kg >= fill.reserve_fen_per_kg
        assert fill.price_fen_per_kg == states[fill.bid_id].price_fen_per_kg, "pay-as-bid"
        assert fill.amount_fen == amount_fen(fill.weight_g, fill.price_fen_per_kg)
        sold = ledger.sold[fill.lot_id]
        sold[0] += fill.crates
        sold[1] += fill.weight_g
        crates, net_g = ledger.offered[fill.lot_id]
        assert sold[0] <= crates and sold[1] <= net_g, "no lot sold beyond its crates or weight"
        ledger.filled[fill.bid_id] += fill.weight_g
    for state in outcome.bid_updates:
        if state.status != "rejected":
            assert state.filled_g == ledger.filled[state.bid_id]
        assert state.filled_g <= state.quantity_g, "no bid filled beyond its quantity"
        assert state.remaining_g == (
            state.quantity_g - state.filled_g if state.status == "resting" else 0
        )
        assert (state.remaining_g > 0) == (state.status == "resting")


def check_book(ledger: Ledger, book: Book, command: BookCommand, outcome: Outcome) -> None:
    lots, bids = book.lots(), book.bids()
    for lot in lots:
        crates, net_g = ledger.offered[lot.lot_id]
        sold_crates, sold_g = ledger.sold[lot.lot_id]
        assert (lot.crates, lot.net_g) == (crates - sold_crates, net_g - sold_g)
        assert lot.reserve_fen_per_kg == ledger.reserve[lot.lot_id]
    for lot_id, (crates, net_g) in ledger.offered.items():
        if lot_id not in ledger.withdrawn and book.lot(lot_id) is None:
            assert ledger.sold[lot_id] == [crates, net_g], "a lot leaves only sold out"
    now = micros(command.occurred_at)
    for bid in bids:
        assert bid.expires_at_us is None or bid.expires_at_us > now
        assert bid.filled_g == ledger.filled[bid.bid_id]
    assert [(b.price_fen_per_kg, b.arrival) for b in bids] == sorted(
        ((b.price_fen_per_kg, b.arrival) for b in bids), key=lambda pa: (-pa[0], pa[1])
    ), "price-time order"
    for lot in lots:
        for bid in bids:
            if bid.price_fen_per_kg >= lot.reserve_fen_per_kg:
                crates = crates_that_fit(lot.crates, lot.net_g, bid.remaining_g)
                weight = crate_weight(lot.crates, lot.net_g, crates) if crates else 0
                assert not (weight > 0 and bid.takes(weight)), f"{lot} and {bid} could trade"
    levels: dict[int, list[int]] = {}
    for bid in bids:
        level = levels.setdefault(bid.price_fen_per_kg, [0, 0])
        level[0] += 1
        level[1] += bid.remaining_g
    line = outcome.board
    assert line == book.board()
    assert line.best_bid_fen_per_kg == max(levels, default=None)
    assert line.depth == tuple(
        DepthLevel(price, *levels[price]) for price in sorted(levels, reverse=True)[:DEPTH_LEVELS]
    )
    assert (line.bids_resting, line.bid_depth_g) == (len(bids), sum(b.remaining_g for b in bids))
    assert (line.lots_resting, line.offered_g) == (len(lots), sum(lot.net_g for lot in lots))
    assert line.trades == ledger.sequence
    assert line.volume_g == sum(sold_g for _, sold_g in ledger.sold.values())


@pytest.mark.parametrize("seed", SEEDS)
def test_invariants_hold_on_a_random_command_stream(seed: int) -> None:
    ledger = Ledger()
    book: Book | None = None
    kinds: set[str] = set()
    for command in random_commands(seed, 400):
        outcome = apply(book, command)
        book = outcome.book
        check_outcome(ledger, command, outcome)
        check_book(ledger, book, command, outcome)
        kinds.update(state.status for state in outcome.bid_updates)
    assert kinds == {"resting", "filled", "cancelled", "expired", "rejected"}


def test_a_lot_that_sweeps_bids_reports_each_bid_once_in_the_order_it_touched_them() -> None:
    book = apply(None, place("a", 520, 30_000, OPEN)).book
    book = apply(book, place("b", 510, 100_000, OPEN)).book
    outcome = apply(book, offer("L1", 10, 100_000, 500, OPEN))
    assert [(f.bid_id, f.weight_g) for f in outcome.fills] == [("a", 30_000), ("b", 70_000)]
    assert [
        (s.bid_id, s.status, s.quantity_g, s.filled_g, s.remaining_g, s.amount_fen)
        for s in outcome.bid_updates
    ] == [
        ("a", "filled", 30_000, 30_000, 0, 15_600),
        ("b", "resting", 100_000, 70_000, 30_000, 35_700),
    ]
    assert (outcome.changed, outcome.duplicate, outcome.rejection) == (True, False, None)


def test_the_stored_book_is_plain_json_and_restores_to_an_equal_book() -> None:
    book: Book | None = None
    for command in random_commands(7, 150):
        book = apply(book, command).book
    assert book is not None
    stored = book.to_dict()
    text = json.dumps(stored, ensure_ascii=False, sort_keys=True)
    restored = Book.from_dict(json.loads(text))
    assert restored == book
    assert json.dumps(restored.to_dict(), ensure_ascii=False, sort_keys=True) == text
    assert stored["layout"] == 2 and stored["trade_sequence"] == book.board().trades


def test_a_book_stored_in_the_old_layout_is_refused_by_name() -> None:
    old: dict[str, Any] = {
        "key": KEY,
        "variety": V,
        "grade": G.value,
        "lots": [],
        "bids": [],
        "seen_lots": [],
    }
    with pytest.raises(ValueError, match="layout 1"):
        Book.from_dict(old)


@pytest.mark.parametrize(
    ("days_later", "duplicate"), [(0, True), (1, True), (2, False), (9, False)]
)
def test_finished_ids_are_remembered_for_their_day_and_the_next(
    days_later: int, duplicate: bool
) -> None:
    late = OPEN + timedelta(days=days_later, hours=16)  # 23:00 in the hall
    book = apply(None, place("b", 500, 10_000, OPEN)).book
    book = apply(book, offer("L1", 1, 10_000, 400, OPEN)).book
    book = apply(book, place("c", 300, 10_000, OPEN)).book
    book = apply(book, cancel("c", OPEN)).book
    again = [
        apply(book, place("b", 500, 10_000, late)),
        apply(book, place("c", 300, 10_000, late)),
        apply(book, offer("L1", 1, 10_000, 400, late)),
    ]
    assert [o.duplicate for o in again] == [duplicate] * 3


def test_a_resting_bid_is_remembered_however_long_it_rests() -> None:
    book = apply(None, place("b", 300, 10_000, OPEN)).book
    outcome = apply(book, place("b", 300, 10_000, OPEN + timedelta(days=30)))
    assert outcome.duplicate and outcome.book.board().bids_resting == 1


def test_the_stored_book_stays_bounded_over_weeks_of_trading() -> None:
    book: Book | None = None
    sizes = []
    for day in range(28):
        morning = OPEN + timedelta(days=day)
        for n in range(40):
            at = morning + timedelta(minutes=n)
            book = apply(book, place(f"B{day}-{n}", 500, 10_000, at)).book
            if n % 4 == 0:
                book = apply(book, cancel(f"B{day}-{n}", at)).book
            else:
                book = apply(book, offer(f"L{day}-{n}", 1, 10_000, 400, at)).book
        assert book is not None
        sizes.append(len(json.dumps(book.to_dict())))
        finished = book.to_dict()
        assert len(finished["finished_bids"]) <= 80 and len(finished["finished_lots"]) <= 60
    assert max(sizes[3:]) <= sizes[2] * 1.05


def test_a_reused_bid_id_does_not_inherit_the_expiry_of_the_bid_that_had_it() -> None:
    week = OPEN + timedelta(days=7)
    book = apply(None, place("b", 300, 10_000, OPEN, expires_at=week)).book
    book = apply(book, cancel("b", OPEN)).book
    again = apply(book, place("b", 300, 10_000, OPEN + timedelta(days=3)))
    assert not again.duplicate
    later = apply(again.book, offer("L1", 1, 10_000, 900, week + timedelta(hours=1)))
    assert later.bid_updates == [] and later.board.bids_resting == 1


ENVELOPE = set(Message.model_fields) | {"type"}


def test_fills_bid_states_and_board_lines_carry_every_event_field_under_its_name() -> None:
    assert set(TradeExecuted.model_fields) - ENVELOPE <= {f.name for f in fields(Fill)}
    assert {f.name for f in fields(BoardLine)} == set(BoardUpdated.model_fields) - ENVELOPE
    assert {f.name for f in fields(BidState)} == set(BidUpdated.model_fields) - ENVELOPE - {
        "book",
        "variety",
        "grade",
    }
    assert {f.name for f in fields(DepthLevel)} == set(ContractDepthLevel.model_fields)


@pytest.mark.parametrize("seed", [11, 12])
def test_every_outcome_of_a_random_stream_makes_valid_events(seed: int) -> None:
    book: Book | None = None
    events = 0
    for command in random_commands(seed, 300):
        outcome = apply(book, command)
        book = outcome.book
        line = outcome.board
        for fill in outcome.fills:
            TradeExecuted(correlation_id=fill.lot_id, **_values(fill))
        for state in outcome.bid_updates:
            BidUpdated(
                correlation_id=state.bid_id,
                book=line.book,
                variety=line.variety,
                grade=line.grade,
                **_values(state),
            )
        depth = tuple(ContractDepthLevel(**_values(level)) for level in line.depth)
        BoardUpdated(correlation_id=command.correlation_id, **{**_values(line), "depth": depth})
        events += 1 + len(outcome.fills) + len(outcome.bid_updates)
    assert events > 300


def _values(item: Any) -> dict[str, Any]:
    known = {"reserve_fen_per_kg"} if isinstance(item, Fill) else set()
    return {f.name: getattr(item, f.name) for f in fields(item) if f.name not in known}
