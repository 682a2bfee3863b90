"""A matcher killed with a backlog in every book, while commands keep arriving through its
recovery, applies each command exactly once.

The proof is the replay: ``book.commands`` read from offset 0 and applied to empty books gives
exactly the trades, the bids' last states and the books' last board lines on the topics. A
command the matcher skipped or applied twice shows as a trade, a bid or a line that differs.
Commands are written straight to ``book.commands``, as the pricing API and the lot intake write
them, so the backlog is large and lands in every partition that holds a book.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer

from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import (
    AmendBid,
    BookCommand,
    CancelBid,
    OfferLot,
    PlaceBid,
    WithdrawLot,
)
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import BOOK_COMMANDS
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from pricing.replay import Report, check

from .conftest import eventually

pytestmark = pytest.mark.e2e

BOOKS = [(variety, grade) for variety in VARIETIES for grade in Grade]


class CommandStream:
    """A seeded day of lots, bids, amendments and cancels over every book."""

    def __init__(self, run: str, seed: int) -> None:
        self.run = run
        self.rng = random.Random(seed)
        self.count = 0
        self.resting: dict[tuple[str, Grade], list[str]] = {book: [] for book in BOOKS}
        self.lots: dict[tuple[str, Grade], list[str]] = {book: [] for book in BOOKS}

    def next(self) -> BookCommand:
        self.count += 1
        rng = self.rng
        variety, grade = book = rng.choice(BOOKS)
        name = f"R{self.run}-{self.count}"
        roll = rng.random()
        mine = self.resting[book]
        if roll < 0.25:
            crates = rng.randint(1, 8)
            self.lots[book].append(name)
            return OfferLot(
                correlation_id=name,
                lot_id=name,
                farmer_id="farmer-restart",
                variety=variety,
                grade=grade,
                crates=crates,
                net_g=crates * 10_000,
                reserve_fen_per_kg=300,
            )
        if roll < 0.45 and mine:
            return AmendBid(
                correlation_id=(bid := rng.choice(mine)),
                bid_id=bid,
                merchant_id="merchant-restart",
                variety=variety,
                grade=grade,
                price_fen_per_kg=rng.randint(300, 400),
                quantity_g=rng.randint(1, 6) * 10_000,
            )
        if roll < 0.5 and mine:
            bid = mine.pop(rng.randrange(len(mine)))
            return CancelBid(
                correlation_id=bid,
                bid_id=bid,
                merchant_id="merchant-restart",
                variety=variety,
                grade=grade,
            )
        mine.append(name)
        return PlaceBid(
            correlation_id=name,
            bid_id=name,
            merchant_id="merchant-restart",
            variety=variety,
            grade=grade,
            price_fen_per_kg=rng.randint(280, 400),
            quantity_g=rng.randint(1, 6) * 10_000,
        )

    def leftovers(self) -> list[BookCommand]:
        """Withdraw every lot and cancel every bid of the run, so that nothing of it rests in
        the books the other tests trade in (a sold lot or a filled bid is refused: no matter)."""
        out: list[BookCommand] = []
        for (variety, grade), lots in self.lots.items():
            for lot in lots:
                out.append(
                    WithdrawLot(
                        correlation_id=lot,
                        lot_id=lot,
                        variety=variety,
                        grade=grade,
                        withdrawn_by="coop",
                        reason="test over",
                    )
                )
        for (variety, grade), bids in self.resting.items():
            for bid in bids:
                out.append(
                    CancelBid(
                        correlation_id=bid,
                        bid_id=bid,
                        merchant_id="merchant-restart",
                        variety=variety,
                        grade=grade,
                    )
                )
        return out


def send(producer: KafkaProducer, stream: CommandStream, count: int, every_s: float = 0) -> None:
    for _ in range(count):
        write(producer, stream.next())
        if every_s:
            time.sleep(every_s)
    producer.flush()


def write(producer: KafkaProducer, command: BookCommand) -> None:
    key = book_key(command.variety, command.grade)
    producer.send(BOOK_COMMANDS.name, key=encode_key(key), value=encode(command))


def matching(broker: Broker) -> Report | None:
    report = check(broker.bootstrap)
    return report if report.matches else None


def test_a_matcher_killed_with_a_backlog_applies_every_command_once(
    broker: Broker, hall: Hall
) -> None:
    stream = CommandStream(uuid.uuid4().hex[:6], seed=12)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    worker = hall.services["pricing-worker"]
    last: list[Report] = []

    def replayed() -> Report | None:
        last[:] = [check(broker.bootstrap)]
        return last[0] if last[0].matches else None

    try:
        # Given a market that traded for a while, its books in the worker's table
        send(producer, stream, 300)
        eventually(lambda: matching(broker), timeout_s=90, every_s=2)
        # When the worker is killed, a backlog builds in every partition, and commands keep
        # coming while it starts again and reads its books back
        worker.signal(signal.SIGKILL)
        assert worker.process is not None
        worker.process.wait(timeout=10)
        send(producer, stream, 900)
        during = threading.Thread(target=send, args=(producer, stream, 400, 0.01))
        during.start()
        hall.start(["pricing-worker"])
        during.join(timeout=60)
        assert not during.is_alive()

        # Then the market the topics show is exactly the one its commands make, and it traded
        try:
            report = eventually(replayed, timeout_s=120, every_s=3)
        except AssertionError:
            pytest.fail(last[0].summary() if last else "no replay ran")
        assert report.trades > 0
    finally:
        # Nothing of this run may rest in the books the other tests trade in
        for command in stream.leftovers():
            write(producer, command)
        producer.flush()
        producer.close()
        eventually(lambda: matching(broker), timeout_s=120, every_s=3)
