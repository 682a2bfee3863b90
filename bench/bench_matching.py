"""How many book commands a second the matching core applies on this machine.

    python bench/bench_matching.py [--seconds 5] [--books 4] [--seed 7] [--batch 64]
        [--json out.json]

A seeded stream over several books (variety x grade): bids placed (most of it), amended and
cancelled by their merchants, and lots arriving, on a simulated clock of a few seconds a command,
so bids expire and trading days roll over as in the hall. Every bid expires within hours, as the
API's default of "end of the trading day" makes them, so the books reach a steady size; the run
first plays a warm-up of simulated hours, untimed, and then measures.

Rows:
- ``memory``: the books stay objects between commands; the time is ``market.apply`` alone;
- ``stored``: every command restores its book with ``Book.from_dict``, applies, and stores it
  with ``to_dict``, as a worker that keeps books in a table of plain values and nothing else does;
- ``batched``: as the matcher works under a backlog (``PRICING_MATCH_BATCH``): books stay objects,
  commands come in batches of ``--batch``, and each book a batch changed is stored once with
  ``to_dict``; a command's time is its ``apply`` plus its share of its batch's stores.

Building the commands is outside the clock. Per operation: p50 and p99 in microseconds. The run
takes about ``--seconds`` in all, split between the rows.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import common

from melon_contracts.commands import AmendBid, BookCommand, CancelBid, OfferLot, PlaceBid
from melon_contracts.reference import VARIETIES, Grade, book_key
from pricing.domain.board import HALL_TIME
from pricing.domain.book import Book
from pricing.domain.market import Outcome, apply

KINDS = ("place", "amend", "cancel", "lot")
MIX = (0.70, 0.10, 0.12, 0.08)
STEP = timedelta(seconds=3)
WARM_UP = timedelta(hours=8)
START = datetime(2025, 8, 1, 5, 0, tzinfo=HALL_TIME)


@dataclass
class Resting:
    """The bids a book reported resting, for cancels and amends to aim at; O(1) pick and drop."""

    ids: list[str] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)
    owner: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, bid_id: str, merchant_id: str, price: int) -> None:
        if bid_id not in self.where:
            self.where[bid_id] = len(self.ids)
            self.ids.append(bid_id)
        self.owner[bid_id] = (merchant_id, price)

    def drop(self, bid_id: str) -> None:
        index = self.where.pop(bid_id, None)
        if index is None:
            return
        last = self.ids.pop()
        if last != bid_id:
            self.ids[index] = last
            self.where[last] = index
        del self.owner[bid_id]


class Workload:
    """The seeded command stream; it watches outcomes so cancels and amends hit resting bids."""

    def __init__(self, seed: int, books: int) -> None:
        self.rng = random.Random(seed)
        pairs = [(variety, grade) for grade in Grade for variety in sorted(VARIETIES)]
        self.books = pairs[:books]
        self.base = {book_key(v, g): 420 + 30 * i for i, (v, g) in enumerate(self.books)}
        self.resting = {book_key(v, g): Resting() for v, g in self.books}
        self.now = START
        self.serial = 0

    def next(self) -> tuple[str, str, BookCommand]:
        rng = self.rng
        self.now += STEP
        self.serial += 1
        variety, grade = rng.choice(self.books)
        key = book_key(variety, grade)
        kind = rng.choices(KINDS, MIX)[0]
        resting = self.resting[key]
        if kind in ("amend", "cancel") and not resting.ids:
            kind = "place"
        common: dict[str, Any] = {"occurred_at": self.now, "variety": variety, "grade": grade}
        if kind == "lot":
            crates = rng.randint(20, 300)
            lot_id = f"L{self.serial}"
            return (
                kind,
                key,
                OfferLot(
                    correlation_id=lot_id,
                    lot_id=lot_id,
                    farmer_id=f"F{rng.randint(1, 400)}",
                    crates=crates,
                    net_g=crates * rng.randint(8_000, 12_000),
                    reserve_fen_per_kg=self.base[key] + rng.randint(-20, 20),
                    **common,
                ),
            )
        if kind == "place":
            bid_id = f"B{self.serial}"
            quantity = rng.randrange(50_000, 2_000_000, 10_000)
            return (
                kind,
                key,
                PlaceBid(
                    correlation_id=bid_id,
                    bid_id=bid_id,
                    merchant_id=f"M{rng.randint(1, 200)}",
                    price_fen_per_kg=self.base[key] + rng.randint(-60, 40),
                    quantity_g=quantity,
                    min_lot_g=rng.randrange(100_000, 500_000, 50_000)
                    if rng.random() < 0.2
                    else None,
                    destination=rng.choice(["兰州", "西安", "上海", "广州"]),
                    cold_chain=rng.random() < 0.4,
                    expires_at=self.now + timedelta(minutes=rng.randint(30, 240)),
                    **common,
                ),
            )
        bid_id = rng.choice(resting.ids)
        merchant, price = resting.owner[bid_id]
        if kind == "cancel":
            return (
                kind,
                key,
                CancelBid(correlation_id=bid_id, bid_id=bid_id, merchant_id=merchant, **common),
            )
        change_price = rng.random() < 0.5
        return (
            kind,
            key,
            AmendBid(
                correlation_id=bid_id,
                bid_id=bid_id,
                merchant_id=merchant,
                price_fen_per_kg=max(1, price + rng.randint(-10, 10)) if change_price else None,
                quantity_g=None if change_price else rng.randrange(50_000, 2_000_000, 10_000),
                **common,
            ),
        )

    def observe(self, key: str, outcome: Outcome) -> None:
        resting = self.resting[key]
        for state in outcome.bid_updates:
            if state.status == "resting":
                resting.add(state.bid_id, state.merchant_id, state.price_fen_per_kg)
            else:
                resting.drop(state.bid_id)


@dataclass
class Row:
    name: str
    latencies_ns: dict[str, list[int]]
    trades: int
    books: list[Book]

    @property
    def ops(self) -> int:
        return sum(len(values) for values in self.latencies_ns.values())

    @property
    def busy_s(self) -> float:
        return sum(sum(values) for values in self.latencies_ns.values()) / 1e9

    def stats(self) -> list[dict[str, Any]]:
        groups = [("all", [v for kind in KINDS for v in self.latencies_ns[kind]])]
        groups += [(kind, self.latencies_ns[kind]) for kind in KINDS]
        rows = []
        for op, values in groups:
            if not values:
                continue
            ordered = sorted(values)
            busy = sum(ordered) / 1e9
            rows.append(
                {
                    "row": self.name,
                    "op": op,
                    "ops": len(ordered),
                    "ops_per_s": round(len(ordered) / busy) if busy else 0,
                    "p50_us": round(ordered[len(ordered) // 2] / 1e3, 1),
                    "p99_us": round(
                        ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)] / 1e3, 1
                    ),
                    "mean_us": round(statistics.fmean(ordered) / 1e3, 1),
                }
            )
        return rows

    def sizes(self) -> dict[str, float]:
        lines = [book.board() for book in self.books]
        return {
            "bids_resting_per_book": round(
                statistics.fmean(line.bids_resting for line in lines), 1
            ),
            "lots_resting_per_book": round(
                statistics.fmean(line.lots_resting for line in lines), 1
            ),
            "price_levels_per_book": round(statistics.fmean(len(line.depth) for line in lines), 1),
        }


def warm(workload: Workload) -> dict[str, Book]:
    books: dict[str, Book] = {}
    until = START + WARM_UP
    while workload.now < until:
        _, key, command = workload.next()
        outcome = apply(books.get(key), command)
        books[key] = outcome.book
        workload.observe(key, outcome)
    return books


def run_batched(
    name: str, start: tuple[Workload, dict[str, Any]], seconds: float, batch: int
) -> Row:
    """Play the stream in batches, storing each changed book once per batch."""
    workload = copy.deepcopy(start[0])
    books = {key: Book.from_dict(value) for key, value in start[1].items()}
    latencies: dict[str, list[int]] = {kind: [] for kind in KINDS}
    trades = 0
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        applied: list[tuple[str, int]] = []
        changed: set[str] = set()
        for _ in range(batch):
            kind, key, command = workload.next()
            began = clock()
            outcome = apply(books.get(key), command)
            applied.append((kind, clock() - began))
            books[key] = outcome.book
            if outcome.changed:
                changed.add(key)
            trades += len(outcome.fills)
            workload.observe(key, outcome)
        began = clock()
        for key in changed:
            books[key].to_dict()
        share = (clock() - began) // len(applied)
        for kind, took in applied:
            latencies[kind].append(took + share)
    return Row(name, latencies, trades, list(books.values()))


def run(name: str, start: tuple[Workload, dict[str, Any]], seconds: float, stored: bool) -> Row:
    """Play the stream on from the warmed-up state for about ``seconds``."""
    workload = copy.deepcopy(start[0])
    values = copy.deepcopy(start[1])
    books = {key: Book.from_dict(value) for key, value in values.items()}
    latencies: dict[str, list[int]] = {kind: [] for kind in KINDS}
    trades = 0
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        kind, key, command = workload.next()
        if stored:
            began = clock()
            value = values.get(key)
            book = None if value is None else Book.from_dict(value)
            outcome = apply(book, command)
            values[key] = outcome.book.to_dict()
            took = clock() - began
        else:
            began = clock()
            outcome = apply(books.get(key), command)
            took = clock() - began
            books[key] = outcome.book
        latencies[kind].append(took)
        trades += len(outcome.fills)
        workload.observe(key, outcome)
    final = [Book.from_dict(v) for v in values.values()] if stored else list(books.values())
    return Row(name, latencies, trades, final)


def table(rows: list[Row]) -> str:
    lines = [f"{'row':<7} {'op':<7} {'ops':>9} {'ops/s':>10} {'p50 µs':>8} {'p99 µs':>8}"]
    for row in rows:
        for stat in row.stats():
            lines.append(
                f"{stat['row']:<7} {stat['op']:<7} {stat['ops']:>9,} {stat['ops_per_s']:>10,} "
                f"{stat['p50_us']:>8.1f} {stat['p99_us']:>8.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="rough total run time")
    parser.add_argument("--books", type=int, default=4, help="books (variety x grade) to trade")
    parser.add_argument("--seed", type=int, default=7, help="seed of the command stream")
    parser.add_argument("--no-stored", action="store_true", help="skip the stored rows")
    parser.add_argument("--batch", type=int, default=64, help="commands a batch, batched row")
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.books <= len(VARIETIES) * len(Grade):
        parser.error(f"--books must be 1 to {len(VARIETIES) * len(Grade)}")

    if not 1 <= args.batch <= 10_000:
        parser.error("--batch must be 1 to 10000")
    names = ["memory"] if args.no_stored else ["memory", "stored", "batched"]
    began = time.perf_counter()
    workload = Workload(args.seed, args.books)
    books = warm(workload)
    start = (workload, {key: book.to_dict() for key, book in books.items()})
    share = max(0.2, args.seconds - (time.perf_counter() - began)) / len(names)
    rows = [
        run_batched(name, start, share, args.batch)
        if name == "batched"
        else run(name, start, share, name == "stored")
        for name in names
    ]

    machine = common.machine()
    print(
        f"Melon Hall matching core, Python {machine['python']} on {machine['cpus']} CPUs; "
        f"{args.books} books, seed {args.seed}"
    )
    print(table(rows))
    for row in rows:
        sizes = row.sizes()
        print(
            f"{row.name}: {row.trades:,} trades; at the end per book "
            f"{sizes['bids_resting_per_book']:,} bids and {sizes['lots_resting_per_book']:,} lots "
            f"resting"
        )
    if args.json is not None:
        document = {
            "machine": machine,
            "books": args.books,
            "seed": args.seed,
            "batch": args.batch,
            "results": [stat for row in rows for stat in row.stats()],
            "trades": {row.name: row.trades for row in rows},
            "book_sizes": {row.name: row.sizes() for row in rows},
        }
        common.write_json(args.json, document)


if __name__ == "__main__":
    main()
