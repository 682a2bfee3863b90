"""The faust agents, run with ``test_context()`` on an in-memory store: no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import OfferLot, PlaceBid
from melon_contracts.events import BidUpdated, BoardUpdated, LotGraded, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import BID_UPDATES, BOARD_UPDATES, BOOK_COMMANDS, TRADES
from pricing import app as worker
from pricing.adapters.outputs import RecordingOutputs
from pricing.domain.book import Book

BOOK = "xizhoumi.class_i"


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingOutputs]:
    recording = RecordingOutputs()
    monkeypatch.setattr(worker, "outputs", recording)
    worker.books.data.clear()
    worker._cache.clear()
    yield recording
    worker.books.data.clear()
    worker._cache.clear()


def graded(lot_id: str) -> LotGraded:
    return LotGraded(
        correlation_id=lot_id,
        lot_id=lot_id,
        station_id="ws-1",
        ticket_no=1,
        farmer_id="farmer-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=10,
        net_g=100_000,
        profile_id="test",
        profile_version=1,
        brix_mean=12.5,
        brix_samples=3,
        reason="test",
    )


def place(bid_id: str, kg: int) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="m-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        price_fen_per_kg=520,
        quantity_g=kg * 1000,
    )


def test_a_graded_lot_becomes_an_offer_on_its_book_at_the_grade_reserve(
    outputs: RecordingOutputs,
) -> None:
    async def scenario() -> None:
        async with worker.lot_intake.test_context() as agent:
            await agent.put(encode(graded("L1")), key=b"L1")

    asyncio.run(scenario())
    [(topic, key, offer)] = outputs.sent
    assert (topic, key) == (BOOK_COMMANDS.name, BOOK)
    assert isinstance(offer, OfferLot)
    assert offer.reserve_fen_per_kg == worker.settings.reserve_fen_per_kg[Grade.CLASS_I]


def test_the_matcher_trades_and_updates_the_board_and_keeps_the_book_in_its_table(
    outputs: RecordingOutputs,
) -> None:
    offer = OfferLot(
        correlation_id="L1",
        lot_id="L1",
        farmer_id="farmer-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=10,
        net_g=100_000,
        reserve_fen_per_kg=450,
    )

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            await agent.put(encode(offer), key=encode_key(BOOK))
            await agent.put(encode(place("b1", 30)), key=encode_key(BOOK))
            await agent.put(encode(place("b1", 30)), key=encode_key(BOOK))

    asyncio.run(scenario())
    trades = outputs.on(TRADES)
    assert [(t.lot_id, t.bid_id, t.weight_g) for t in trades if isinstance(t, TradeExecuted)] == [
        ("L1", "b1", 30_000)
    ]
    last = outputs.on(BOARD_UPDATES)[-1]
    assert isinstance(last, BoardUpdated)
    assert (last.offered_g, last.volume_g, last.last_price_fen_per_kg) == (70_000, 30_000, 520)
    assert worker.books[BOOK]["book"]["trade_sequence"] == 1
    states = [u for u in outputs.on(BID_UPDATES) if isinstance(u, BidUpdated)]
    assert [(u.bid_id, u.status, u.filled_g, u.remaining_g) for u in states] == [
        ("b1", "filled", 30_000, 0)
    ]


def test_a_malformed_command_goes_to_the_dead_letter_topic_and_the_matcher_carries_on(
    outputs: RecordingOutputs,
) -> None:
    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            await agent.put(b"{not json", key=encode_key(BOOK))
            await agent.put(encode(place("b2", 10)), key=encode_key(BOOK))

    asyncio.run(scenario())
    names = [name for name, _, _ in outputs.sent]
    assert names == [BOOK_COMMANDS.dlq, BID_UPDATES.name, BOARD_UPDATES.name]


def test_a_command_the_book_cannot_take_is_dead_lettered_and_the_matcher_carries_on(
    outputs: RecordingOutputs,
) -> None:
    worker.books.data[BOOK] = {"version": 1, "book": {"not": "a book"}}

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            await agent.put(encode(place("b3", 10)), key=encode_key(BOOK))
            worker.books.data.clear()
            await agent.put(encode(place("b4", 10)), key=encode_key(BOOK))

    asyncio.run(scenario())
    names = [name for name, _, _ in outputs.sent]
    assert names == [BOOK_COMMANDS.dlq, BID_UPDATES.name, BOARD_UPDATES.name]


def test_the_table_decides_when_it_moved_on_without_this_worker(outputs: RecordingOutputs) -> None:
    offer = OfferLot(
        correlation_id="L9",
        lot_id="L9",
        farmer_id="farmer-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=10,
        net_g=100_000,
        reserve_fen_per_kg=450,
    )

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            await agent.put(encode(offer), key=encode_key(BOOK))
            # Another worker owned the book meanwhile and sold the lot: the table says so
            empty = Book(BOOK, "xizhoumi", Grade.CLASS_I).to_dict()
            worker.books.data[BOOK] = {"version": 7, "book": empty}
            await agent.put(encode(place("b9", 30)), key=encode_key(BOOK))

    asyncio.run(scenario())
    assert outputs.on(TRADES) == []
    assert worker.books[BOOK]["version"] == 8
