"""``melon-pricing replay``: the market run again from ``book.commands``, checked with the topics.

One total order per book makes matching deterministic, so anyone can recompute the market: read
``book.commands`` from offset 0, apply every command in its partition's order to books that start
empty, and the trades, the last state of every bid and the last board line of every book must be
exactly those on ``trades``, ``bid.updates`` and ``board.updates``. A trade on the topic that the
replay does not make, or makes differently, means the matcher applied a command twice or skipped
one; the report names each difference.

``Replay`` is the fold, pure; ``read_partitions`` and ``check`` read the broker with a plain
consumer (no group, nothing committed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from melon_contracts.codec import UndecodableMessage, decode
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, BoardUpdated, TradeExecuted
from melon_contracts.topics import BID_UPDATES, BOARD_UPDATES, BOOK_COMMANDS, TRADES, TopicSpec
from pricing.adapters.command_log import Command, Unusable
from pricing.adapters.translate import bid_events, board_event, trade_events
from pricing.domain.book import Book
from pricing.domain.market import apply

VOLATILE = frozenset({"event_id", "occurred_at"})
"""What differs between two publications of one fact: the envelope's id and clock."""


def content(message: Message) -> dict[str, Any]:
    """A message as the fact it states, for comparing a replay with the topics."""
    return message.model_dump(mode="json", exclude=set(VOLATILE))


@dataclass
class Replay:
    """The market folded from its commands, as a fresh matcher with an empty table would."""

    books: dict[str, Book] = field(default_factory=dict)
    trades: dict[str, TradeExecuted] = field(default_factory=dict)
    bids: dict[str, BidUpdated] = field(default_factory=dict)
    board: dict[str, BoardUpdated] = field(default_factory=dict)
    commands: int = 0
    unusable: int = 0

    def take(self, command: Command) -> None:
        self.commands += 1
        try:
            key, decoded = command.read()
        except Unusable:
            self.unusable += 1
            return
        try:
            outcome = apply(self.books.get(key), decoded)
        except (ValueError, KeyError, TypeError):
            self.unusable += 1  # the matcher dead-letters a command its book cannot take
            return
        self.books[key] = outcome.book
        for trade in trade_events(outcome.fills):
            self.trades[trade.trade_id] = trade
        for state in bid_events(outcome.book, outcome.bid_updates):
            self.bids[state.bid_id] = state
        if outcome.changed:
            self.board[key] = board_event(outcome.board, decoded.correlation_id)

    def take_all(self, partitions: Iterable[list[Command]]) -> Replay:
        for commands in partitions:
            for command in commands:
                self.take(command)
        return self


@dataclass
class Published:
    """What the matcher published: every trade by id, the last state of each bid, the last line
    of each book; trade ids seen with two different contents are kept apart."""

    trades: dict[str, TradeExecuted] = field(default_factory=dict)
    conflicting: set[str] = field(default_factory=set)
    bids: dict[str, BidUpdated] = field(default_factory=dict)
    board: dict[str, BoardUpdated] = field(default_factory=dict)

    def add(self, message: Message) -> None:
        if isinstance(message, TradeExecuted):
            earlier = self.trades.setdefault(message.trade_id, message)
            if content(earlier) != content(message):
                self.conflicting.add(message.trade_id)
        elif isinstance(message, BidUpdated):
            self.bids[message.bid_id] = message
        elif isinstance(message, BoardUpdated):
            self.board[message.book] = message


@dataclass
class Report:
    commands: int
    unusable: int
    trades: int
    differences: list[str]

    @property
    def matches(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        head = f"replayed {self.commands} commands ({self.unusable} unusable): {self.trades} trades"
        if self.matches:
            return f"{head}; trades, bid states and board lines match the topics"
        shown = "\n  ".join(self.differences[:20])
        more = len(self.differences) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return f"{head}; {len(self.differences)} difference(s):\n  {shown}{tail}"


def compare(replay: Replay, published: Published) -> Report:
    """Every way the topics differ from the replay, one line each."""
    differences = [
        f"trade {trade_id} was published twice, differently"
        for trade_id in sorted(published.conflicting)
    ]
    for trade_id in sorted(set(replay.trades) | set(published.trades)):
        mine, theirs = replay.trades.get(trade_id), published.trades.get(trade_id)
        if theirs is None:
            differences.append(f"trade {trade_id} is missing from {TRADES.name}")
        elif mine is None:
            differences.append(f"trade {trade_id} on {TRADES.name} follows from no command")
        elif content(mine) != content(theirs):
            differences.append(f"trade {trade_id}: {_differs(mine, theirs)}")
    for bid_id in sorted(set(replay.bids) | set(published.bids)):
        differs = _differs(replay.bids.get(bid_id), published.bids.get(bid_id))
        if differs:
            differences.append(f"bid {bid_id}: {differs}")
    for book in sorted(set(replay.board) | set(published.board)):
        differs = _differs(replay.board.get(book), published.board.get(book))
        if differs:
            differences.append(f"board line of {book}: {differs}")
    return Report(replay.commands, replay.unusable, len(replay.trades), differences)


def _differs(mine: Message | None, theirs: Message | None) -> str:
    """What the topic's last message says otherwise than the replay's; empty when nothing."""
    if mine is None or theirs is None:
        return "only the replay has it" if theirs is None else "only the topic has it"
    replayed, published = content(mine), content(theirs)
    fields = [name for name in replayed if replayed[name] != published.get(name)]
    return ", ".join(
        f"{name} {replayed[name]!r} on replay, {published.get(name)!r} on the topic"
        for name in fields
    )


def read_partitions(bootstrap: str, spec: TopicSpec) -> list[list[Command]]:
    """Every record of ``spec`` so far, per partition in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    try:
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        held: dict[int, list[Command]] = {tp.partition: [] for tp in partitions}
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for record in batch:
                    if record.offset < ends[tp]:
                        held[tp.partition].append(
                            Command(tp.partition, record.offset, record.key, record.value, tp.topic)
                        )
        return [held[p] for p in sorted(held)]
    finally:
        consumer.close()


def check(bootstrap: str) -> Report:
    """Replay ``book.commands`` and compare with what the matcher published."""
    replay = Replay().take_all(read_partitions(bootstrap, BOOK_COMMANDS))
    published = Published()
    for spec in (TRADES, BID_UPDATES, BOARD_UPDATES):
        for records in read_partitions(bootstrap, spec):
            for record in records:
                try:
                    published.add(decode(spec, record.value))
                except UndecodableMessage:
                    continue  # not the matcher's: its readers dead-letter it
    return compare(replay, published)


def main(argv: list[str] | None = None) -> int:
    from pricing.settings import Settings

    parser = argparse.ArgumentParser(
        prog="melon-pricing replay",
        description="Run the market again from book.commands and compare it with the topics.",
    )
    parser.add_argument("--bootstrap", default=Settings().bootstrap)
    args = parser.parse_args(argv)
    report = check(args.bootstrap)
    print(report.summary())
    return 0 if report.matches else 1


if __name__ == "__main__":
    sys.exit(main())
