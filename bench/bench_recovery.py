"""How long the matcher takes to come back after a crash, as its one big book grows.

    python bench/bench_recovery.py [--sizes 100,1000,4000] [--read-back] [--json out.json]

The matcher keeps every order book in the changelog-backed faust table ``books``, in memory, and
each batch of commands writes each book it changed to the changelog again, whole. A worker that
starts reads the changelog back before it takes a command, so the time a crash costs grows with
the books.

For each size the run starts a broker of its own (a temporary folder, free ports on 127.0.0.1)
and a worker under a fresh app id, puts ``size`` resting bids on one book by writing ``PlaceBid``
commands to ``book.commands`` (distinct ids and prices, no lots, so nothing trades), waits until
the board shows them all and the worker has committed its offsets, kills the worker's process
group with SIGKILL, starts a new worker with the same app id and data folder and, right after the
start, sends one more bid. Seconds from the new process's start until:

- ``ready_s``: the worker logs ``[^Worker]: Ready``;
- ``assigned_s``: the consumer group gave it its partitions, so its changelog read begins;
- ``recovered_s``: faust logs ``Recovery complete``;
- ``applied_s``: the new bid's board line is read back from ``board.updates``;
- ``first_*``: the same for the first worker on an empty table (its bid goes to another book).

``replay_s`` is ``recovered_s - assigned_s``, the changelog read itself; ``group_wait_s`` is how
much later than the first worker the new one got its partitions: the group waits for the killed
member's session to time out before it assigns them again.

Sizes: ``book_bytes`` is the JSON of ``Book.to_dict()`` for the same book built in-process with
``market.apply``; ``changelog_records`` the records written (end offsets) and
``changelog_disk_bytes`` the bytes of the changelog's segments on the broker's disk when the
worker was killed (compaction only ever shrinks closed segments). With ``--read-back``, a plain
consumer reads the changelog afterwards (``replayed_*``), timing the fetch (``read_s``) and the
JSON decoding (``decode_s``) apart.

A book is one changelog record, and a record larger than the worker's producer allows
(``producer_max_request_size``) stops the worker; such sizes are refused, as are sizes the run
estimates to take longer than ``--max-seconds`` each. Every wait has a time limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import common
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from melon_contracts.admin import BOOK_RECORD_MAX_BYTES, ensure_topics
from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import PlaceBid
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import BOARD_UPDATES, BOOK_COMMANDS
from melon_devkit.kafka import Broker, BrokerError
from pricing.domain.book import Book
from pricing.domain.market import apply

VARIETY = sorted(VARIETIES)[0]
GRADE = Grade.CLASS_I
BOOK = book_key(VARIETY, GRADE)
PROBE_GRADE = Grade.EXTRA
"""The first worker's bid goes to another book, so the measured book holds only its own bids."""
QUANTITY_G = 100_000
MAX_PRICE = 100_000
PARTITIONS = BOOK_COMMANDS.partitions
RECORD_MARGIN = 1_000
"""Bytes a changelog record carries besides the book: its key, version and record framing."""

READY_LINE = "[^Worker]: Ready"
ASSIGNED_LINE = "Executing _on_partitions_assigned"
RECOVERED_LINE = "Recovery complete"
ERROR_WORDS = ("Traceback", "[ERROR]", "[CRITICAL]")
STARTUP_NOISE = ("GroupCoordinatorNotAvailable",)
"""Errors every worker logs while a new group's coordinator is elected; not worth reporting."""

DEFAULT_SIZES = (100, 1000, 4000)
MAX_SECONDS_PER_SIZE = 300.0
BUILD_AT_MOST = 20_000
"""Larger books are refused for their time alone, without building them in-process first."""


def progress(message: str) -> None:
    print(message, flush=True)


class BenchError(RuntimeError):
    """A step did not finish in time, or the worker failed."""


# --- the book ------------------------------------------------------------------------------


def bid(serial: int, grade: Grade = GRADE, tag: str = "b") -> PlaceBid:
    """The ``serial``-th bid: its own id and price level; with no lots, it never trades."""
    bid_id = f"{tag}{serial}"
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id=f"m{serial % 50}",
        variety=VARIETY,
        grade=grade,
        price_fen_per_kg=1 + serial % MAX_PRICE,
        quantity_g=QUANTITY_G,
    )


def book_bytes(size: int) -> int:
    """Bytes of ``Book.to_dict()`` as JSON once the book holds bids 1 to ``size``."""
    book: Book | None = None
    for serial in range(1, size + 1):
        book = apply(book, bid(serial)).book
    return 0 if book is None else len(json.dumps(book.to_dict()))


@dataclass(frozen=True)
class WorkerLimits:
    """What the worker is configured with, read from its faust app."""

    max_record_bytes: int
    session_timeout_s: float
    commit_interval_s: float

    @classmethod
    def of_the_worker(cls) -> WorkerLimits:
        from pricing.app import app

        return cls(
            max_record_bytes=int(app.conf.producer_max_request_size),
            session_timeout_s=float(app.conf.broker_session_timeout),
            commit_interval_s=float(app.conf.broker_commit_interval),
        )


def estimate_s(size: int, limits: WorkerLimits, read_back: bool) -> float:
    """Rough seconds one size takes on a two-core machine. Filling and reading the changelog
    back grow with the square of the size, since every command writes the whole book."""
    fixed = 35.0 + limits.session_timeout_s  # broker, two worker starts, the dead member
    fill = 0.006 * size + 4.0e-6 * size * size
    replay = 1.0e-6 * size * size
    plain_read = 2.0e-6 * size * size if read_back else 0.0
    return fixed + fill + replay + plain_read


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from exc
    if not sizes or any(not 1 <= size < MAX_PRICE - 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes are 1 to {MAX_PRICE - 2} bids: {text!r}")
    return sizes


def refusals(
    sizes: list[int], limits: WorkerLimits, max_seconds: float, read_back: bool
) -> tuple[list[str], dict[int, int]]:
    """Why each refused size is refused, and the book's bytes for every size it measured."""
    reasons = []
    stored = {}
    for size in sizes:
        seconds = estimate_s(size, limits, read_back)
        if seconds > max_seconds:
            reasons.append(
                f"{size} bids: estimated {seconds:.0f}s, longer than --max-seconds "
                f"{max_seconds:.0f}s"
            )
        if seconds > max_seconds and size > BUILD_AT_MOST:
            continue
        stored[size] = book_bytes(size)
        if stored[size] + RECORD_MARGIN > limits.max_record_bytes:
            most = int((limits.max_record_bytes - RECORD_MARGIN) / (stored[size] / size))
            reasons.append(
                f"{size} bids: the book is {stored[size]:,} bytes of JSON, more than one "
                f"changelog record may hold ({limits.max_record_bytes:,} bytes, faust's "
                f"producer_max_request_size); the worker stops at about {most:,} bids"
            )
    return reasons, stored


# --- the worker process --------------------------------------------------------------------


@dataclass
class Worker:
    """``python -m pricing worker`` in a process group of its own; its output lines with the
    seconds since its start each was read at."""

    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start(self) -> None:
        self.lines = []
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pricing", "worker"],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        with self.log_file.open("ab") as log:
            for raw in stream:
                self.lines.append((time.monotonic() - self.started, raw.decode(errors="replace")))
                log.write(raw)
                log.flush()

    def seen(self, needle: str) -> float | None:
        """Seconds from the start until the first line holding ``needle``, or None."""
        return next((round(at, 3) for at, line in list(self.lines) if needle in line), None)

    def errors(self) -> list[str]:
        return [
            line.strip()
            for _, line in list(self.lines)
            if any(word in line for word in ERROR_WORDS)
            and not any(noise in line for noise in STARTUP_NOISE)
        ]

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            first_error = next(iter(self.errors()), "no error logged")
            raise BenchError(f"the worker exited with {code}: {first_error[:300]}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash ends it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        if self.reader is not None:
            self.reader.join(timeout=5)
        self.process = None


def wait_until(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every_s)
    raise BenchError(f"{what}: not within {timeout_s:.0f}s")


# --- reading the broker --------------------------------------------------------------------


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-books-changelog"


@dataclass
class Board:
    """Reads ``board.updates`` from its end on: the board line each command caused."""

    bootstrap: str
    resting: int = -1
    """Bids resting on the measured book, by its latest board line."""
    caused: dict[str, tuple[float, int]] = field(default_factory=dict)
    """By command (correlation id): when its board line was read, and the bids it showed."""

    def __post_init__(self) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="bench-recovery-board",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        parts = [TopicPartition(BOARD_UPDATES.name, p) for p in range(BOARD_UPDATES.partitions)]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for part in parts:
            self.consumer.position(part)

    def poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=100).values():
            for record in records:
                line = json.loads(record.value)
                if line["book"] == BOOK:
                    self.resting = int(line["bids_resting"])
                self.caused[line["correlation_id"]] = (time.monotonic(), line["bids_resting"])

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class ReadBack:
    records: int
    bytes: int
    read_s: float
    decode_s: float


def read_back(bootstrap: str, topic: str) -> ReadBack:
    """Read the whole changelog with a plain consumer and decode each value as JSON, as a
    worker's recovery does; fetching and decoding timed apart."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="bench-recovery-read-back",
        enable_auto_commit=False,
        check_crcs=False,  # checked in pure Python it would be most of the time
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(parts)
        parts = [tp for tp in parts if ends[tp] > 0]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records = size = 0
        decode_s = 0.0
        began = time.perf_counter()
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    records += 1
                    size += len(record.value or b"")
                    clock = time.perf_counter()
                    json.loads(record.value or b"null")
                    decode_s += time.perf_counter() - clock
        read_s = time.perf_counter() - began - decode_s
        return ReadBack(records, size, round(read_s, 3), round(decode_s, 3))
    finally:
        consumer.close()


# --- one size ------------------------------------------------------------------------------


@dataclass
class Result:
    size: int
    book_bytes: int
    app_id: str
    first_ready_s: float | None = None
    first_assigned_s: float | None = None
    first_applied_s: float | None = None
    fill_s: float | None = None
    fill_commands_per_s: float | None = None
    fill_last_tenth_commands_per_s: float | None = None
    changelog_records: int | None = None
    changelog_disk_bytes: int | None = None
    ready_s: float | None = None
    assigned_s: float | None = None
    recovered_s: float | None = None
    applied_s: float | None = None
    replay_s: float | None = None
    group_wait_s: float | None = None
    bids_after_recovery: int | None = None
    replayed_records: int | None = None
    replayed_bytes: int | None = None
    read_s: float | None = None
    decode_s: float | None = None
    errors: list[str] = field(default_factory=list)
    failed: str | None = None


@dataclass
class Trial:
    """One size: a broker, the clients the run reads and writes with, and the two workers."""

    size: int
    home: Path
    timeout_s: float
    result: Result
    started: Broker | None = None
    workers: list[Worker] = field(default_factory=list)
    board: Board | None = None
    producer: KafkaProducer | None = None
    admin: KafkaAdminClient | None = None

    @property
    def broker(self) -> Broker:
        if self.started is None:
            raise BenchError("the broker has not started")
        return self.started

    @property
    def tag(self) -> str:
        return f"[{self.size:>6} bids]"

    @property
    def changelog(self) -> str:
        return changelog_topic(self.result.app_id)

    def run(self, read_it_back: bool) -> Result:
        try:
            self.setup()
            self.first_start()
            self.fill()
            self.settle_and_crash()
            self.restart()
            if read_it_back:
                self.read_back()
        except (BenchError, BrokerError, KafkaError) as exc:
            self.result.failed = str(exc)
            progress(f"{self.tag} FAILED: {exc}")
        finally:
            for worker in self.workers:
                self.result.errors += worker.errors()
            self.close()
        self.result.errors = list(dict.fromkeys(self.result.errors))[:20]
        return self.result

    def setup(self) -> None:
        self.started, took = common.start_broker(self.home)
        bootstrap = self.broker.bootstrap
        ensure_topics(bootstrap)
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-recovery")
        # Created before the worker starts, as melon-topics does for the default app id: a
        # worker that declares it itself can ask for its partitions a moment too early.
        self.admin.create_topics(
            [
                NewTopic(
                    name=self.changelog,
                    num_partitions=PARTITIONS,
                    replication_factor=1,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "max.message.bytes": str(BOOK_RECORD_MAX_BYTES),
                    },
                )
            ]
        )
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, client_id="bench-recovery"
        )
        self.board = Board(bootstrap)
        progress(
            f"{self.tag} broker {bootstrap} up in {took:.1f}s; "
            f"the book will be {self.result.book_bytes:,} bytes"
        )

    def worker(self, number: int) -> Worker:
        env = {
            "PYTHONUNBUFFERED": "1",
            "PRICING_BOOTSTRAP": self.broker.bootstrap,
            "PRICING_APP_ID": self.result.app_id,
            "PRICING_WORKER_DATA_DIR": str(self.home / "worker"),
            "PRICING_WORKER_METRICS_PORT": "0",
            "PRICING_LOG_LEVEL": "INFO",
        }
        worker = Worker(env, self.home / f"worker-{number}.log")
        self.workers.append(worker)
        return worker

    def start_and_send(self, worker: Worker, command: PlaceBid) -> float:
        """Start the worker and send ``command`` at once; wait until the worker is ready and
        has applied it. Returns when its board line was read, in seconds from the start."""
        assert self.board is not None
        board = self.board
        worker.start()
        self.send(command)

        def done() -> bool:
            worker.check_alive()
            board.poll()
            return worker.seen(READY_LINE) is not None and command.correlation_id in board.caused

        wait_until("the worker ready and the bid applied", done, self.timeout_s, every_s=0.0)
        return round(board.caused[command.correlation_id][0] - worker.started, 3)

    def send(self, command: PlaceBid) -> None:
        assert self.producer is not None
        key = book_key(command.variety, command.grade)
        self.producer.send(BOOK_COMMANDS.name, key=encode_key(key), value=encode(command))
        self.producer.flush()

    def first_start(self) -> None:
        first = self.worker(1)
        result = self.result
        result.first_applied_s = self.start_and_send(first, bid(0, PROBE_GRADE, "probe"))
        result.first_ready_s = first.seen(READY_LINE)
        result.first_assigned_s = first.seen(ASSIGNED_LINE)
        progress(
            f"{self.tag} first worker: ready {fmt(result.first_ready_s)}s, "
            f"took a bid at {fmt(result.first_applied_s)}s"
        )

    def fill(self) -> None:
        """Send the bids; wait until the book's board line shows them all."""
        assert self.producer is not None and self.board is not None
        board, size, worker = self.board, self.size, self.workers[-1]
        began = time.monotonic()
        key = encode_key(BOOK)
        for serial in range(1, size + 1):
            self.producer.send(BOOK_COMMANDS.name, key=key, value=encode(bid(serial)))
        self.producer.flush()
        tenth = size - max(1, size // 10)
        tenth_at: float | None = None
        reported = began
        while board.resting < size:
            worker.check_alive()
            board.poll()
            now = time.monotonic()
            if tenth_at is None and board.resting >= tenth:
                tenth_at = now
            if now - reported > 10:
                reported = now
                progress(f"{self.tag} filling: {max(0, board.resting):,}/{size:,} bids applied")
            if now - began > self.timeout_s:
                raise BenchError(
                    f"filling: {board.resting:,}/{size:,} bids after {now - began:.0f}s"
                )
        ended = time.monotonic()
        self.result.fill_s = round(ended - began, 3)
        self.result.fill_commands_per_s = round(size / (ended - began), 1)
        if tenth_at is not None and ended > tenth_at:
            self.result.fill_last_tenth_commands_per_s = round(
                (size - tenth) / (ended - tenth_at), 1
            )

    def settle_and_crash(self) -> None:
        """Wait until every book write is in the changelog and the commands' offsets are
        committed, so the new worker has nothing to redo; then kill the worker."""
        assert self.admin is not None
        admin, app_id = self.admin, self.result.app_id
        # The matcher writes a book once per batch of commands: wait for the record that
        # holds every bid.
        wait_until(
            "changelog written",
            lambda: self.changelog_bids() >= self.size,
            self.timeout_s,
            every_s=0.5,
        )
        ends = self.end_offsets(BOOK_COMMANDS.name)

        def committed() -> bool:
            offsets = admin.list_group_offsets({app_id: None}).get(app_id, {})
            done = {tp.partition: meta.offset for tp, meta in offsets.items()}
            return all(done.get(p, 0) >= end for p, end in ends.items() if end)

        wait_until("offsets committed", committed, self.timeout_s, every_s=0.5)
        worker = self.workers[-1]
        worker.check_alive()
        worker.kill()
        self.result.changelog_records = sum(self.end_offsets(self.changelog).values())
        self.result.changelog_disk_bytes = sum(
            segment.stat().st_size
            for folder in self.broker.data_dir.glob(f"{self.changelog}-*")
            for segment in folder.glob("*.log")
        )
        progress(
            f"{self.tag} filled in {fmt(self.result.fill_s)}s; changelog "
            f"{self.result.changelog_records:,} records, "
            f"{self.result.changelog_disk_bytes:,} bytes on disk; worker killed"
        )

    def changelog_bids(self) -> int:
        """Bids resting in the book's latest changelog record (0 before there is one)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            client_id="bench-recovery-tail",
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        try:
            parts = [TopicPartition(self.changelog, p) for p in range(PARTITIONS)]
            ends = {tp: end for tp, end in consumer.end_offsets(parts).items() if end > 0}
            consumer.assign(list(ends))
            for tp, end in ends.items():
                consumer.seek(tp, end - 1)
            found = 0
            deadline = time.monotonic() + 10
            left = set(ends)
            while left and time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    for record in records:
                        if record.offset == ends[tp] - 1:
                            value = json.loads(record.value or b"null") or {}
                            found = max(found, len(value.get("book", {}).get("bids", [])))
                            left.discard(tp)
            return found
        finally:
            consumer.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap, client_id="bench-recovery-offsets"
        )
        try:
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            consumer.close()

    def restart(self) -> None:
        assert self.board is not None
        second, result = self.worker(2), self.result
        fresh = bid(self.size + 1)
        result.applied_s = self.start_and_send(second, fresh)
        result.ready_s = second.seen(READY_LINE)
        result.assigned_s = second.seen(ASSIGNED_LINE)
        result.recovered_s = second.seen(RECOVERED_LINE)
        result.bids_after_recovery = self.board.caused[fresh.correlation_id][1] - 1
        if result.recovered_s is not None and result.assigned_s is not None:
            result.replay_s = round(result.recovered_s - result.assigned_s, 3)
        if result.assigned_s is not None and result.first_assigned_s is not None:
            result.group_wait_s = round(result.assigned_s - result.first_assigned_s, 3)
        progress(
            f"{self.tag} restarted: partitions {fmt(result.assigned_s)}s, "
            f"recovered {fmt(result.recovered_s)}s, ready {fmt(result.ready_s)}s, "
            f"new bid applied {fmt(result.applied_s)}s; "
            f"{result.bids_after_recovery:,} bids before it"
        )
        if result.bids_after_recovery != self.size:
            raise BenchError(
                f"the new worker recovered {result.bids_after_recovery} bids, not {self.size}"
            )
        second.kill()

    def read_back(self) -> None:
        found = read_back(self.broker.bootstrap, self.changelog)
        self.result.replayed_records = found.records
        self.result.replayed_bytes = found.bytes
        self.result.read_s = found.read_s
        self.result.decode_s = found.decode_s
        progress(
            f"{self.tag} changelog read back: {found.records:,} records, {found.bytes:,} bytes; "
            f"fetched in {found.read_s:.2f}s, JSON decoded in {found.decode_s:.2f}s"
        )

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for client in (self.board, self.producer, self.admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        if self.started is not None:
            self.started.stop()
            shutil.rmtree(self.started.home, ignore_errors=True)


# --- report --------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: list[Result]) -> str:
    lines = [
        f"{'bids':>5} {'book B':>10} {'log recs':>8} {'log disk B':>14} {'fill s':>7} "
        f"{'ready s':>7} {'parts s':>7} {'replay s':>8} {'apply s':>7}  "
        f"{'1st ready':>9} {'1st apply':>9}"
    ]
    for r in results:
        if r.failed:
            lines.append(f"{r.size:>5} {r.book_bytes:>10,} FAILED: {r.failed.splitlines()[0]}")
            continue
        lines.append(
            f"{r.size:>5} {r.book_bytes:>10,} {r.changelog_records or 0:>8,} "
            f"{r.changelog_disk_bytes or 0:>14,} {fmt(r.fill_s):>7} {fmt(r.ready_s):>7} "
            f"{fmt(r.assigned_s):>7} {fmt(r.replay_s):>8} {fmt(r.applied_s):>7}  "
            f"{fmt(r.first_ready_s):>9} {fmt(r.first_applied_s):>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="bids in the book, one run each (default %(default)s)",
    )
    parser.add_argument(
        "--read-back", action="store_true", help="also read the changelog with a plain consumer"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS_PER_SIZE,
        help="refuse a size estimated to take longer (default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="limit of each wait (default %(default)s s)"
    )
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    parser.add_argument("--keep", type=Path, help="keep the workers' logs in this folder")
    args = parser.parse_args(argv)

    # A plain kill of the run still stops its broker and workers (each in a session of its own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    limits = WorkerLimits.of_the_worker()
    refused, stored = refusals(args.sizes, limits, args.max_seconds, args.read_back)
    if refused:
        parser.error("refusing:\n  " + "\n  ".join(refused))
    total = sum(estimate_s(size, limits, args.read_back) for size in args.sizes)
    progress(f"matcher recovery with books of {args.sizes} bids; about {total / 60:.0f} min")

    results: list[Result] = []
    with common.workdir(args.keep, "melon-bench-recovery-") as home:
        for size in args.sizes:
            app_id = f"melon-pricing-bench-{uuid.uuid4().hex[:8]}"
            trial = Trial(
                size, home / f"size-{size}", args.timeout, Result(size, stored[size], app_id)
            )
            results.append(trial.run(args.read_back))

    machine = common.machine()
    print(
        f"\nMelon Hall matcher recovery, Python {machine['python']} on {machine['cpus']} CPUs; "
        f"seconds from the new worker's start (parts: partitions assigned)"
    )
    print(table(results))
    for result in results:
        if result.read_s is not None:
            print(
                f"{result.size} bids: a plain consumer reads the changelog "
                f"({result.replayed_records:,} records, {result.replayed_bytes or 0:,} bytes) in "
                f"{result.read_s:.2f}s and decodes it in {fmt(result.decode_s)}s"
            )
        for error in result.errors[:5]:
            print(f"{result.size} bids, the worker logged: {error[:200]}")
    if args.json is not None:
        document = {
            "machine": machine,
            "worker": asdict(limits),
            "book": BOOK,
            "results": [asdict(result) for result in results],
        }
        common.write_json(args.json, document)
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
