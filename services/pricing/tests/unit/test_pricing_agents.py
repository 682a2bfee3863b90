"""The faust agents, run with ``test_context()`` on an in-memory store: no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import AmendBid, OfferLot, PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, BoardUpdated, LotGraded, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import (
    BID_UPDATES,
    BOARD_UPDATES,
    BOOK_COMMANDS,
    LOTS_GRADED,
    TRADES,
    TopicSpec,
)
from pricing import app as worker
from pricing.adapters.command_log import Command, InMemoryCommandLog
from pricing.adapters.outputs import RecordingOutputs
from pricing.domain.book import Book

BOOK = "xizhoumi.class_i"


@pytest.fixture(autouse=True)
def command_log(monkeypatch: pytest.MonkeyPatch) -> InMemoryCommandLog:
    """The log as the matcher reads it by offset; a test context's puts start at offset 0."""
    log = InMemoryCommandLog()
    monkeypatch.setattr(worker, "command_log", log)
    return log


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingOutputs]:
    recording = RecordingOutputs()
    monkeypatch.setattr(worker, "outputs", recording)
    worker.books.data.clear()
    worker._cache.clear()
    yield recording
    worker.books.data.clear()
    worker._cache.clear()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """The matcher takes commands in batches: ``put`` returns once a command joined one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "the matcher did not get there in time"
        await asyncio.sleep(0.005)


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
            await until(lambda: len(outputs.sent) == 1)
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
            await until(lambda: BOOK in worker.books.data)
            # Another worker owned the book meanwhile and sold the lot: the table says so
            empty = Book(BOOK, "xizhoumi", Grade.CLASS_I).to_dict()
            worker.books.data[BOOK] = {"version": 7, "book": empty}
            await agent.put(encode(place("b9", 30)), key=encode_key(BOOK))

    asyncio.run(scenario())
    assert outputs.on(TRADES) == []
    assert worker.books[BOOK]["version"] == 8


def test_a_broken_book_in_a_batch_costs_only_its_own_command(outputs: RecordingOutputs) -> None:
    # Given a book whose stored record is broken, and commands for it among a healthy book's
    other = "xizhoumi.extra"
    worker.books.data[BOOK] = {"version": 1, "book": {"not": "a book"}}

    def extra(bid_id: str) -> PlaceBid:
        return place(bid_id, 10).model_copy(update={"grade": Grade.EXTRA})

    counted = {"kind": place("x", 1).type}
    applied = REGISTRY.get_sample_value("melon_pricing_book_commands_total", counted) or 0.0

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            for command, key in (
                (extra("e1"), other),
                (place("b5", 10), BOOK),
                (extra("e2"), other),
            ):
                await agent.put(encode(command), key=encode_key(key), wait=False)
            await until(lambda: len(outputs.sent) == 5)

    asyncio.run(scenario())
    # Then its command alone is dead-lettered; the others went out exactly once, in order
    names = [(name, key) for name, key, _ in outputs.sent]
    assert sorted(names) == sorted(
        [
            (BOOK_COMMANDS.dlq, BOOK),
            (BID_UPDATES.name, "e1"),
            (BOARD_UPDATES.name, other),
            (BID_UPDATES.name, "e2"),
            (BOARD_UPDATES.name, other),
        ]
    )
    assert [key for name, key in names if name == BID_UPDATES.name] == ["e1", "e2"]
    assert worker.books[other]["book"]["bids"] and worker.books.data[BOOK]["version"] == 1
    # and each healthy command was counted once, however its batch was run
    assert REGISTRY.get_sample_value("melon_pricing_book_commands_total", counted) == applied + 2


class FlakyBroker(RecordingOutputs):
    """Refuses the first ``failures`` batches, as a broker that went away for a moment."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish_all(self, messages: list[tuple[TopicSpec, str, Message]]) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker went away")
        await super().publish_all(messages)


def test_the_matcher_waits_for_the_broker_rather_than_skip_a_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a broker that refuses the outputs twice
    flaky = FlakyBroker(failures=2)
    monkeypatch.setattr(worker, "outputs", flaky)
    monkeypatch.setattr(worker, "PUBLISH_RETRY_S", 0.01)
    worker.books.data.clear()
    worker._cache.clear()
    retries = REGISTRY.get_sample_value("melon_pricing_publish_retries_total") or 0.0

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            await agent.put(encode(place("b6", 10)), key=encode_key(BOOK))
            await until(lambda: BOOK in worker.books.data)

    asyncio.run(scenario())
    # Then the bid's outputs went out once the broker took them, and the book was written after
    assert [(name, key) for name, key, _ in flaky.sent] == [
        (BID_UPDATES.name, "b6"),
        (BOARD_UPDATES.name, BOOK),
    ]
    assert REGISTRY.get_sample_value("melon_pricing_publish_retries_total") == retries + 2
    worker.books.data.clear()
    worker._cache.clear()


def marked(partition: int) -> int | None:
    """The offset the matcher's mark for ``partition`` stands at."""
    mark = worker.books.data.get(worker._mark_key(partition))
    return None if mark is None else int(mark["through"])


def command(offset: int, message: Message, partition: int = 0) -> Command:
    return Command(partition, offset, encode_key(BOOK), encode(message))


def amend(bid_id: str, kg: int) -> AmendBid:
    return AmendBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="m-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        price_fen_per_kg=530,
        quantity_g=kg * 1000,
    )


def test_commands_the_stream_skipped_are_read_from_the_log_and_applied_in_order(
    outputs: RecordingOutputs, command_log: InMemoryCommandLog
) -> None:
    # Given a log of three bids, of which the stream delivers only the last (as faust does when
    # its recovery clears records it had already fetched)
    first = 0
    for offset, bid_id in enumerate(("s1", "s2"), start=first):
        command_log.append(command(offset, place(bid_id, 10)))

    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            agent.sent_offset = first + 2
            await agent.put(encode(place("s3", 10)), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 2)

    asyncio.run(scenario())
    # Then the matcher noticed the gap, read it from the log and applied all three in order
    assert command_log.reads == [(0, first, first + 2)]
    states = [u.bid_id for u in outputs.on(BID_UPDATES) if isinstance(u, BidUpdated)]
    assert states == ["s1", "s2", "s3"]
    assert worker.books[worker._mark_key(0)]["through"] == first + 2


def test_a_command_delivered_again_after_its_book_was_written_is_not_applied_twice(
    outputs: RecordingOutputs,
) -> None:
    # Given a bid placed and amended, the book written with both
    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            first = agent.sent_offset
            await agent.put(encode(place("r1", 40)), key=encode_key(BOOK))
            await agent.put(encode(amend("r1", 20)), key=encode_key(BOOK))
            # and a one-crate lot sold to it
            await agent.put(encode(small_lot("r-lot")), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 2)
            before = list(outputs.sent)
            # When a restarted stream delivers the amendment again (its offset not committed)
            agent.sent_offset = first + 1
            await agent.put(encode(amend("r1", 20)), key=encode_key(BOOK))
            agent.sent_offset = first + 3
            await agent.put(encode(place("r2", 5)), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 3)
            # Then nothing comes of it: the remaining quantity is not reset
            assert [key for _, key, _ in outputs.sent[len(before) :]] == ["r2", BOOK]

    asyncio.run(scenario())
    bids = {b["bid_id"]: b["remaining_g"] for b in worker.books[BOOK]["book"]["bids"]}
    assert bids == {"r1": 10_000, "r2": 5_000}


def small_lot(lot_id: str) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        lot_id=lot_id,
        farmer_id="farmer-1",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        crates=1,
        net_g=10_000,
        reserve_fen_per_kg=450,
    )


def test_a_book_written_after_a_lost_mark_skips_the_commands_it_holds(
    outputs: RecordingOutputs,
) -> None:
    # Given a book record written through offset 1 while its partition's mark was lost at 0
    async def scenario() -> None:
        async with worker.matcher.test_context() as agent:
            first = agent.sent_offset
            await agent.put(encode(place("m1", 40)), key=encode_key(BOOK))
            await agent.put(encode(amend("m1", 30)), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 1)
            worker.books.data[worker._mark_key(0)] = {"through": first}
            worker._cache.clear()
            before = list(outputs.sent)
            # When the amendment comes again, then a new command
            agent.sent_offset = first + 1
            await agent.put(encode(amend("m1", 30)), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 1)
            assert outputs.sent == before
            await agent.put(encode(place("m2", 10)), key=encode_key(BOOK))
            await until(lambda: marked(0) == first + 2)

    asyncio.run(scenario())
    bids = {b["bid_id"]: b["remaining_g"] for b in worker.books[BOOK]["book"]["bids"]}
    assert bids == {"m1": 30_000, "m2": 10_000}


def test_a_stalled_partition_catches_up_from_the_log(
    outputs: RecordingOutputs, command_log: InMemoryCommandLog
) -> None:
    # Given a partition whose mark stands at offset 4 while the log holds 5 and 6, which the
    # stream will never deliver
    worker.books.data[worker._mark_key(3)] = {"through": 4}
    command_log.append(command(5, place("c1", 10), partition=3))
    command_log.append(command(6, place("c2", 10), partition=3))

    async def scenario() -> int:
        return await worker.catch_up(3)

    # When the watch catches the partition up
    assert asyncio.run(scenario()) == 2
    # Then both commands were applied and the mark moved past them
    states = [u.bid_id for u in outputs.on(BID_UPDATES) if isinstance(u, BidUpdated)]
    assert states == ["c1", "c2"]
    assert worker.books[worker._mark_key(3)]["through"] == 6
    assert asyncio.run(scenario()) == 0


def test_a_graded_lot_under_another_lots_key_is_dead_lettered_not_offered(
    outputs: RecordingOutputs,
) -> None:
    async def scenario() -> None:
        async with worker.lot_intake.test_context() as agent:
            await agent.put(encode(graded("L7")), key=b"L8")
            await agent.put(encode(graded("L9")), key=b"L9")

    asyncio.run(scenario())
    [(topic, _, letter), (then, key, _)] = outputs.sent
    assert topic == LOTS_GRADED.dlq and "wrong key" in letter.reason
    assert (then, key) == (BOOK_COMMANDS.name, BOOK)
