"""How fast the price board's live stream reaches a hall full of watchers, and what they cost.

    python bench/bench_fanout.py [--clients 1000] [--updates 200] [--rate 20] [--json out.json]
        [--client-processes 2] [--bootstrap HOST:PORT] [--keep DIR]

The pricing API runs as its own process (``python -m pricing api``, on a free port of 127.0.0.1)
against a broker: by default one of its own in a temporary folder on free ports, or the one
``--bootstrap`` names. Board lines are written to ``board.updates`` as the matcher writes them
(the topic has one writer, so the bench publishes as ``pricing``), first one line per book so the
board is not empty, then ``--updates`` lines at ``--rate`` a second over all twelve books, each a
realistic line with five depth levels and its ``occurred_at`` taken right before it is published.

``--clients`` watchers open ``GET /board/stream`` on plain asyncio sockets (as a browser's
EventSource would: HTTP/1.1, chunked), spread over ``--client-processes`` processes, and each
waits for the snapshot and ``ready`` before the first update is sent. A watcher notes the wall
time every frame arrives; its ``updated_at`` is the line's ``occurred_at``, so delivery latency
is arrival minus ``occurred_at``: producer, broker, the API's reader, the feed's fan-out, the SSE
write and the client's read.

The API drops no watcher for being slow. Each watcher holds at most one pending line per book: a
newer line of a book replaces the one still waiting, and a watcher that falls behind skips to the
newest line of each book. So a sent line a watcher never read is ``skipped_conflated`` when it
later read a newer line of the same book (what the API should do), and ``missing_late`` when it
read none by the end of the wait. A watcher is complete once it has read the newest line sent of
every book that changed; the wait ends as soon as every watcher is complete or has lost its
stream, and at ``--updates / --rate`` seconds (at least 10) after the last send otherwise.
Watchers do not reconnect: one whose stream ended (the API ends streams when it shuts down)
counts as ended. The latency percentiles are over the lines that arrived; lines received per
watcher per second are over the window from the first send to the last arrival.

The API's own counters (``/metrics``) are read before the watchers connect and after they left:
streams open, lines its streams took (delivered) and lines replaced before a stream took them
(conflated). Its delivered count should equal what the watchers received; the output shows both.

The API's memory is its VmRSS (``/proc/<pid>/status``) before anyone subscribes, with every
watcher connected, at the end with them still connected, and after they left; its CPU is
utime + stime (``/proc/<pid>/stat``) while the watchers connect, and from the first update
until the wait for the last lines ended. The client processes measure their own CPU over the
same window: one near a whole core means the clients, not the API, set the latencies.

With ``--bootstrap`` the lines land on that broker's board for good (the topic is compacted),
each book's trade count continued from what the board held, so a wall watching it shows them;
lines another writer sends meanwhile count in the API's delivered but not in the watchers'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import common
import httpx

from melon_contracts.admin import ensure_topics
from melon_contracts.events import BoardUpdated, DepthLevel
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import BOARD_UPDATES
from melon_contracts.transport import KafkaPublisher
from melon_contracts.units import amount_fen
from melon_devkit.kafka import Broker, free_port
from pricing.domain.board import DEPTH_LEVELS, HALL_TIME, vwap_fen_per_kg

BOOKS = [(variety, grade) for variety in sorted(VARIETIES) for grade in Grade]
GRADE_PRICE_FEN = {
    Grade.EXTRA: 820,
    Grade.CLASS_I: 640,
    Grade.CLASS_II: 460,
    Grade.OUT_OF_GRADE: 160,
}
"""Where each grade's best bid starts, fen per kg: a Minqin honeydew's late-summer prices."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UPDATED_AT = re.compile(rb'"updated_at": "([^"]+)"')
CONNECTING_AT_ONCE = 64
"""Watchers opening their stream at the same time, per client process."""
CLIENT_BUSY = 0.8
"""A client process using this share of a core or more is too busy to read on time."""


class BenchError(RuntimeError):
    """Something the run needs did not happen in time."""


STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", file=sys.stderr, flush=True)


def micros(at: datetime) -> int:
    """An instant as whole microseconds since the epoch: exact, unlike a float of seconds."""
    return (at - EPOCH) // timedelta(microseconds=1)


def parse_micros(stamp: str) -> int:
    return micros(datetime.fromisoformat(stamp))


# --- the board lines -----------------------------------------------------------------------


@dataclass
class BookTape:
    """One book's state as the matcher would report it; each step is one plausible change."""

    variety: str
    grade: Grade
    trades: int
    best_bid: int
    previous_close: int
    last: int | None = None
    high: int | None = None
    low: int | None = None
    volume_g: int = 0
    volume_g_today: int = 0
    amount_fen_today: int = 0
    trades_today: int = 0

    def step(self, rng: random.Random) -> None:
        self.best_bid = max(50, self.best_bid + rng.choice((-20, -10, 0, 0, 10, 20)))
        if rng.random() < 0.4:
            price = self.best_bid
            weight = rng.randrange(200, 3_000) * 1_000
            self.trades += 1
            self.trades_today += 1
            self.volume_g += weight
            self.volume_g_today += weight
            self.amount_fen_today += amount_fen(weight, price)
            self.last = price
            self.high = price if self.high is None else max(self.high, price)
            self.low = price if self.low is None else min(self.low, price)

    def fields(self, rng: random.Random, cause: str) -> dict[str, Any]:
        """Everything of the line but its ``occurred_at``, which is taken when it is sent."""
        depth = tuple(
            DepthLevel(
                price_fen_per_kg=self.best_bid - 10 * level,
                bids=rng.randrange(1, 7),
                quantity_g=rng.randrange(500, 8_000) * 1_000,
            )
            for level in range(DEPTH_LEVELS)
        )
        lots = rng.randrange(0, 9)
        return {
            "correlation_id": cause,
            "book": book_key(self.variety, self.grade),
            "variety": self.variety,
            "grade": self.grade,
            "best_bid_fen_per_kg": self.best_bid,
            "bids_resting": sum(level.bids for level in depth) + rng.randrange(0, 30),
            "bid_depth_g": sum(level.quantity_g for level in depth)
            + rng.randrange(0, 40_000) * 1_000,
            "depth": depth,
            "lots_resting": lots,
            "offered_g": lots * rng.randrange(800, 2_500) * 1_000,
            "last_price_fen_per_kg": self.last,
            "volume_g": self.volume_g,
            "trades": self.trades,
            "trading_day": datetime.now(HALL_TIME).date(),
            "high_fen_per_kg": self.high,
            "low_fen_per_kg": self.low,
            "vwap_fen_per_kg": vwap_fen_per_kg(self.amount_fen_today, self.volume_g_today),
            "volume_g_today": self.volume_g_today,
            "amount_fen_today": self.amount_fen_today,
            "trades_today": self.trades_today,
            "previous_close_fen_per_kg": self.previous_close,
            "change_fen_per_kg": None if self.last is None else self.last - self.previous_close,
        }


class Tape:
    """The seeded stream of board lines over every book."""

    def __init__(self, seed: int, trades_so_far: dict[str, int]) -> None:
        self.rng = random.Random(seed)
        self.books = [
            BookTape(
                variety,
                grade,
                # A line with fewer trades than the board holds would be taken for an old one.
                trades=trades_so_far.get(book_key(variety, grade), 0) + 40,
                best_bid=GRADE_PRICE_FEN[grade],
                previous_close=GRADE_PRICE_FEN[grade] - 10,
            )
            for variety, grade in BOOKS
        ]
        self.sent = 0

    def next_fields(self, book: int | None = None) -> dict[str, Any]:
        tape = self.books[self.rng.randrange(len(self.books)) if book is None else book]
        tape.step(self.rng)
        self.sent += 1
        return tape.fields(self.rng, f"bench-fanout-{self.sent}")


# --- the pricing API -----------------------------------------------------------------------


class PricingApi:
    """``python -m pricing api`` in a session of its own; its memory and CPU read from /proc."""

    def __init__(self, bootstrap: str, home: Path) -> None:
        self.port = free_port()
        self.log_file = home / "pricing-api.log"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PRICING_BOOTSTRAP": bootstrap,
            "PRICING_HOST": "127.0.0.1",
            "PRICING_PORT": str(self.port),
            "PRICING_MERCHANTS_FILE": str(home / "merchants.json"),
            "PRICING_LOG_LEVEL": "INFO",
        }
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pricing", "api"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, timeout_s: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise BenchError(f"the pricing API exited with {code}:\n{tail(self.log_file)}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise BenchError(f"the pricing API was not healthy within {timeout_s:.0f}s")

    def board_trades(self) -> dict[str, int]:
        lines = httpx.get(f"{self.url}/board", timeout=10).json()["lines"]
        return {line["book"]: int(line["trades"]) for line in lines}

    def metrics(self, timeout_s: float) -> dict[str, float]:
        """The feed's own counters: streams open, lines its streams took, lines conflated;
        empty when the API did not answer within ``timeout_s``."""
        wanted = {
            "melon_pricing_board_subscribers": "subscribers",
            "melon_pricing_board_updates_delivered_total": "delivered",
            "melon_pricing_board_updates_conflated_total": "conflated",
        }
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=timeout_s).text
        except httpx.HTTPError:
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in wanted:
                found[wanted[name]] = float(value)
        return found

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if found is None:
            raise BenchError("the pricing API's VmRSS is not in /proc")
        return int(found.group(1))

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- the watchers (in client processes) ----------------------------------------------------


class Finish:
    """Set once every watcher of a process has read the newest sent line of every book that
    changed (it is complete), or lost its stream."""

    def __init__(self) -> None:
        self.newest: frozenset[int] | None = None
        self.left = 0
        self.done = asyncio.Event()
        self._micros: dict[bytes, int] = {}

    def micros(self, stamp: bytes) -> int:
        """An ``updated_at`` as microseconds; every watcher reads the same stamps, so each is
        parsed once per process."""
        found = self._micros.get(stamp)
        if found is None:
            found = self._micros[stamp] = parse_micros(stamp.decode("ascii"))
        return found

    def expect(self, newest: frozenset[int], watchers: list[Watcher]) -> None:
        """``newest``: the ``occurred_at`` of each book's last sent line."""
        self.newest, self.left = newest, len(watchers)
        for watcher in watchers:
            watcher.catch_up()
        if not self.left:
            self.done.set()

    def one_more(self) -> None:
        self.left -= 1
        if not self.left:
            self.done.set()


class Watcher(asyncio.Protocol):
    """One board stream read as a browser would, noting when every line arrives."""

    def __init__(self, port: int, finish: Finish) -> None:
        self.finish = finish
        self.finished = False
        self.request = (
            f"GET /board/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode("ascii")
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.arrivals: list[tuple[bytes, float]] = []
        self.newest_read: set[int] = set()
        self.snapshot = 0
        self.ended = False
        self.error = ""
        self._head = b""
        self._headers_done = False
        self._chunked = False
        self._raw = b""
        self._data_left = 0
        self._skip = 0
        self._text = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def catch_up(self) -> None:
        """Note the lines that arrived before the newest of each book were known."""
        for stamp, _ in self.arrivals:
            self.note(stamp)
        self.check()

    def note(self, stamp: bytes) -> None:
        newest = self.finish.newest
        if newest is not None and (at := self.finish.micros(stamp)) in newest:
            self.newest_read.add(at)

    def check(self) -> None:
        newest = self.finish.newest
        if self.finished or newest is None:
            return
        if self.ended or len(self.newest_read) == len(newest):
            self.finished = True
            self.finish.one_more()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.check()
        if exc is not None and not self.error:
            self.error = repr(exc)
        if not self.ready.done():
            self.ready.set_exception(BenchError(self.error or "the stream ended before ready"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.ended:
            return
        if not self._headers_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end].lower(), self._head[end + 4 :]
            self._headers_done = True
            if not head.startswith((b"http/1.1 200", b"http/1.0 200")):
                self.fail(head.split(b"\r\n", 1)[0].decode("latin-1"))
                return
            self._chunked = b"transfer-encoding: chunked" in head
        body = self._dechunk(data) if self._chunked else data
        if body:
            self._frames(body, now)
        if self.ended:
            # The API ended the stream (it is shutting down); a browser would reconnect.
            self.close()
            if not self.ready.done():
                self.ready.set_exception(BenchError("the stream ended before ready"))
            self.check()

    def _frames(self, body: bytes, now: float) -> None:
        *frames, self._text = (self._text + body).split(b"\n\n")
        for frame in frames:
            if frame.startswith(b"event: board"):
                if self.ready.done():
                    stamp = UPDATED_AT.search(frame)
                    if stamp is not None:
                        self.arrivals.append((stamp.group(1), now))
                        self.note(stamp.group(1))
                        self.check()
                else:
                    self.snapshot += 1
            elif frame.startswith(b"event: ready") and not self.ready.done():
                self.ready.set_result(None)

    def _dechunk(self, data: bytes) -> bytes:
        buffer, pos, body = self._raw + data, 0, bytearray()
        while pos < len(buffer):
            if self._data_left:
                take = min(self._data_left, len(buffer) - pos)
                body += buffer[pos : pos + take]
                pos += take
                self._data_left -= take
                if not self._data_left:
                    self._skip = 2
            elif self._skip:
                take = min(self._skip, len(buffer) - pos)
                pos += take
                self._skip -= take
            else:
                end = buffer.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(buffer[pos:end].split(b";", 1)[0], 16)
                pos = end + 2
                if size == 0:
                    pos = len(buffer)
                    self.ended = True
                    break
                self._data_left = size
        self._raw = buffer[pos:]
        return bytes(body)

    def fail(self, reason: str) -> None:
        self.error = reason
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def client_process(conn: Connection, port: int, count: int, timeouts: tuple[float, float]) -> None:
    """A client process's life, driven by the bench over ``conn``; see ``run_watchers``."""
    try:
        asyncio.run(run_watchers(conn, port, count, *timeouts))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


async def run_watchers(
    conn: Connection, port: int, count: int, connect_timeout_s: float, drain_timeout_s: float
) -> None:
    """Open ``count`` streams and report; take the sent lines' times and books, wait until every
    watcher is complete (or the bound), report what each read; close when told and report that
    too."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    finish = Finish()

    async def open_stream() -> Watcher:
        async with gate:
            watcher = Watcher(port, finish)
            try:
                await loop.create_connection(lambda: watcher, "127.0.0.1", port)
                async with asyncio.timeout(connect_timeout_s):
                    await watcher.ready
            except BaseException:
                watcher.close()
                raise
            return watcher

    began = time.perf_counter()
    opened = await asyncio.gather(*(open_stream() for _ in range(count)), return_exceptions=True)
    watchers = [item for item in opened if isinstance(item, Watcher)]
    failures = [repr(item) for item in opened if not isinstance(item, Watcher)]
    connect_s = time.perf_counter() - began
    cpu0, wall0 = time.process_time(), time.perf_counter()
    conn.send(
        {
            "connected": len(watchers),
            "failures": failures[:5],
            "failed": len(failures),
            "connect_s": connect_s,
            "snapshot": min((w.snapshot for w in watchers), default=0),
        }
    )
    expected: list[tuple[int, str]] | None = await loop.run_in_executor(None, conn.recv)
    if expected is None:
        return
    last_of_book = {book: index for index, (_, book) in enumerate(expected)}
    finish.expect(frozenset(expected[index][0] for index in last_of_book.values()), watchers)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(drain_timeout_s):
            await finish.done.wait()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    report: dict[str, Any] = {
        "latencies": [],
        "received": [],
        "skipped": [],
        "late": [],
        "duplicates": 0,
        "complete": [],
        "ended": [w.ended for w in watchers],
        "last_arrival": 0.0,
        "errors": sorted({w.error for w in watchers if w.error})[:5],
        "cpu_s": cpu_s,
        "wall_s": wall_s,
    }
    index_of = {at: index for index, (at, _) in enumerate(expected)}
    for watcher in watchers:
        read: set[int] = set()
        for stamp, arrived in watcher.arrivals:
            index = index_of.get(finish.micros(stamp))
            if index is None:
                continue  # another writer's line (``--bootstrap``)
            if index in read:
                report["duplicates"] += 1
                continue
            read.add(index)
            report["latencies"].append(arrived - expected[index][0] / 1e6)
            report["last_arrival"] = max(report["last_arrival"], arrived)
        newest_read: dict[str, int] = {}
        for index in read:
            book = expected[index][1]
            newest_read[book] = max(index, newest_read.get(book, -1))
        superseded = sum(
            1
            for index, (_, book) in enumerate(expected)
            if index not in read and newest_read.get(book, -1) > index
        )
        report["received"].append(len(read))
        report["skipped"].append(superseded)
        report["late"].append(len(expected) - len(read) - superseded)
        report["complete"].append(all(index in read for index in last_of_book.values()))
    conn.send(report)
    await loop.run_in_executor(None, conn.recv)
    for watcher in watchers:
        watcher.close()
    await asyncio.sleep(0.2)
    conn.send({"closed": len(watchers)})


@dataclass
class Clients:
    """The client processes, each with its share of the watchers."""

    port: int
    clients: int
    processes: int
    connect_timeout_s: float
    drain_timeout_s: float
    workers: list[tuple[Any, Connection]] = field(default_factory=list)

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        shares = [
            self.clients // self.processes + (1 if i < self.clients % self.processes else 0)
            for i in range(self.processes)
        ]
        timeouts = (self.connect_timeout_s, self.drain_timeout_s)
        for share in shares:
            mine, theirs = context.Pipe()
            process = context.Process(
                target=client_process, args=(theirs, self.port, share, timeouts), daemon=True
            )
            process.start()
            theirs.close()
            self.workers.append((process, mine))

    def gather(self, timeout_s: float, what: str) -> list[dict[str, Any]]:
        """One answer from every process, within ``timeout_s``."""
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        pending = {id(conn): conn for _, conn in self.workers}
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"the client processes did not report {what} in {timeout_s:.0f}s")
            for ready in wait(list(pending.values()), timeout=left):
                assert isinstance(ready, Connection)
                try:
                    answers[id(ready)] = ready.recv()
                except EOFError as exc:
                    raise BenchError(f"a client process died before it reported {what}") from exc
                del pending[id(ready)]
        return [answers[id(conn)] for _, conn in self.workers]

    def tell(self, message: object) -> None:
        for _, conn in self.workers:
            with contextlib.suppress(OSError):
                conn.send(message)

    def stop(self) -> None:
        for process, conn in self.workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
            conn.close()
        self.workers.clear()


# --- the run -------------------------------------------------------------------------------


@dataclass
class Figures:
    """The run's settings and what it measured; latencies in ms, memory in KiB, CPU in s."""

    clients: int
    updates: int
    rate: float
    client_processes: int
    bootstrap: str
    own_broker: bool
    books: int = len(BOOKS)
    broker_start_s: float | None = None
    api_start_s: float = 0.0
    connect_s: float = 0.0
    connected: int = 0
    connect_failures: list[str] = field(default_factory=list)
    snapshot_lines: int = 0
    publish_s: float = 0.0
    publish_rate: float = 0.0
    publish_ms_p50: float = 0.0
    publish_ms_max: float = 0.0
    drain_s: float = 0.0
    """From the last send until every watcher was complete, or the wait's bound."""
    expected: int = 0
    delivered: int = 0
    """Sent lines the watchers received, each counted once per watcher."""
    skipped_conflated: int = 0
    missing_late: int = 0
    missing_unconnected: int = 0
    duplicates: int = 0
    clients_complete: int = 0
    clients_ended: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    received_per_watcher_per_s: dict[str, float] = field(default_factory=dict)
    server_rss_kb: dict[str, int] = field(default_factory=dict)
    server_rss_kb_per_client: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    server_cpu_share: float = 0.0
    server_counters: dict[str, float] = field(default_factory=dict)
    """Streams left open after the watchers did; lines delivered and conflated during the run."""
    api_delivered_matches: bool | None = None
    """The API's delivered counter equals the lines the watchers received; None without it."""
    client_cpu_s: list[float] = field(default_factory=list)
    client_cpu_share: list[float] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    client_bottleneck: bool = False
    """A client process used ``CLIENT_BUSY`` of a core or more: it read late, so the latencies
    are partly its own."""


def raise_open_files(clients: int) -> int:
    """The API (a child, so it inherits it) holds a socket per watcher, and so do the clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 1_024
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise BenchError(f"{clients} watchers need {wanted} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def publish(publisher: KafkaPublisher, tape: Tape, figures: Figures) -> list[tuple[int, str]]:
    """Send the updates at the rate; returns every line's ``occurred_at`` in microseconds and its
    book, in the order sent."""
    sent: list[tuple[int, str]] = []
    took: list[float] = []
    starts: list[float] = []
    began = time.perf_counter()
    for index in range(figures.updates):
        pause = began + index / figures.rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        fields = tape.next_fields()
        started = time.perf_counter()
        starts.append(started)
        line = BoardUpdated(occurred_at=datetime.now(UTC), **fields)
        publisher.publish(BOARD_UPDATES, line.book, line)
        took.append(time.perf_counter() - started)
        sent.append((micros(line.occurred_at), line.book))
    figures.publish_s = time.perf_counter() - began
    took.sort()
    # Between the first send and the last: n lines span n - 1 intervals.
    spread = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    figures.publish_rate = (len(starts) - 1) / spread if spread else 0.0
    figures.publish_ms_p50 = common.percentile(took, 0.5) * 1e3
    figures.publish_ms_max = took[-1] * 1e3 if took else 0.0
    if len({at for at, _ in sent}) < len(sent):
        raise BenchError(
            "two lines were sent in the same microsecond; watchers tell them apart by it"
        )
    return sent


def seed_board(api: PricingApi, publisher: KafkaPublisher, tape: Tape, timeout_s: float) -> None:
    """One line per book before anyone watches, so every stream starts with a full snapshot;
    it also warms the producer, whose first send waits for the topic's metadata."""
    for book in range(len(tape.books)):
        line = BoardUpdated(**tape.next_fields(book))
        publisher.publish(BOARD_UPDATES, line.book, line)
    wanted = {book_key(v, g): t.trades for (v, g), t in zip(BOOKS, tape.books, strict=True)}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = api.board_trades()
        if all(held.get(book, -1) >= trades for book, trades in wanted.items()):
            return
        time.sleep(0.1)
    raise BenchError(f"the API's board did not show the first lines within {timeout_s:.0f}s")


def measure(api: PricingApi, publisher: KafkaPublisher, figures: Figures, timeout_s: float) -> None:
    figures.api_start_s = round(api.wait_healthy(timeout_s), 2)
    progress(f"pricing API on {api.url} healthy in {figures.api_start_s:.1f}s")
    tape = Tape(7, api.board_trades())
    seed_board(api, publisher, tape, timeout_s)
    rss = figures.server_rss_kb
    rss["idle"] = api.rss_kb()
    before = api.metrics(timeout_s)
    cpu0 = api.cpu_s()
    drain_s = max(10.0, figures.updates / figures.rate)
    clients = Clients(api.port, figures.clients, figures.client_processes, timeout_s, drain_s)
    clients.start()
    try:
        connected = clients.gather(timeout_s + 30, "their streams open")
        figures.connected = sum(answer["connected"] for answer in connected)
        figures.connect_failures = [f for answer in connected for f in answer["failures"]][:5]
        figures.connect_s = round(max(answer["connect_s"] for answer in connected), 2)
        figures.snapshot_lines = min(answer["snapshot"] for answer in connected)
        rss["connected"] = api.rss_kb()
        cpu1, wall1 = api.cpu_s(), time.perf_counter()
        progress(
            f"{figures.connected}/{figures.clients} watchers on the stream in "
            f"{figures.connect_s:.1f}s; sending {figures.updates} updates at {figures.rate:g}/s"
        )
        first_sent_at = time.time()
        sent = publish(publisher, tape, figures)
        last_sent = time.perf_counter()
        clients.tell(sent)
        results = clients.gather(drain_s + 30, "the lines they read")
        cpu2, wall2 = api.cpu_s(), time.perf_counter()
        figures.drain_s = round(wall2 - last_sent, 2)
        progress(f"the watchers have read what they could in {figures.drain_s:.1f}s; closing them")
        rss["end"] = api.rss_kb()
        clients.tell("close")
        clients.gather(30, "their streams closed")
    finally:
        clients.tell(None)
        clients.stop()
    after = wait_for_no_subscribers(api, 10.0)
    if after:
        figures.server_counters = {
            "subscribers": after.get("subscribers", 0.0),
            **{
                key: after.get(key, 0.0) - before.get(key, 0.0)
                for key in ("delivered", "conflated")
            },
        }
    rss["after_close"] = api.rss_kb()
    figures.server_cpu_s = {
        "connect": round(cpu1 - cpu0, 2),
        "updates": round(cpu2 - cpu1, 2),
    }
    figures.server_cpu_share = round((cpu2 - cpu1) / (wall2 - wall1), 3)
    if figures.connected:
        figures.server_rss_kb_per_client = round(
            (rss["connected"] - rss["idle"]) / figures.connected, 1
        )
    summarize(figures, len(sent), first_sent_at, results)


def wait_for_no_subscribers(api: PricingApi, timeout_s: float) -> dict[str, float]:
    """The API's counters once every stream has closed, or the last ones it gave in time."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, float] = {}
    while (left := deadline - time.monotonic()) > 0:
        found = api.metrics(max(0.5, left)) or found
        if found.get("subscribers", -1) == 0:
            break
        time.sleep(0.1)
    return found


def summarize(
    figures: Figures, sent: int, first_sent_at: float, results: list[dict[str, Any]]
) -> None:
    latencies = sorted(value for answer in results for value in answer["latencies"])
    received = [count for answer in results for count in answer["received"]]
    figures.expected = figures.clients * sent
    figures.delivered = sum(received)
    figures.skipped_conflated = sum(sum(answer["skipped"]) for answer in results)
    figures.missing_late = sum(sum(answer["late"]) for answer in results)
    figures.missing_unconnected = (figures.clients - len(received)) * sent
    figures.duplicates = sum(answer["duplicates"] for answer in results)
    figures.clients_complete = sum(sum(answer["complete"]) for answer in results)
    figures.clients_ended = sum(sum(answer["ended"]) for answer in results)
    window = max((answer["last_arrival"] for answer in results), default=0.0) - first_sent_at
    if received and window > 0:
        figures.received_per_watcher_per_s = {
            "mean": round(figures.delivered / len(received) / window, 2),
            "min": round(min(received) / window, 2),
            "sent": round(sent / window, 2),
        }
    if "delivered" in figures.server_counters:
        figures.api_delivered_matches = figures.server_counters["delivered"] == figures.delivered
    figures.client_errors = [e for answer in results for e in answer["errors"]][:5]
    figures.client_cpu_s = [round(answer["cpu_s"], 2) for answer in results]
    figures.client_cpu_share = [
        round(answer["cpu_s"] / answer["wall_s"], 3) if answer["wall_s"] else 0.0
        for answer in results
    ]
    figures.client_bottleneck = max(figures.client_cpu_share, default=0.0) >= CLIENT_BUSY
    figures.latency_ms = {
        "p50": round(common.percentile(latencies, 0.50) * 1e3, 2),
        "p95": round(common.percentile(latencies, 0.95) * 1e3, 2),
        "p99": round(common.percentile(latencies, 0.99) * 1e3, 2),
        "max": round((latencies[-1] if latencies else 0.0) * 1e3, 2),
        "mean": round(sum(latencies) / len(latencies) * 1e3, 2) if latencies else 0.0,
    }


def table(figures: Figures) -> str:
    rss, cpu, latency = figures.server_rss_kb, figures.server_cpu_s, figures.latency_ms
    rows = [
        ("watchers on the stream", f"{figures.connected:,} of {figures.clients:,}"),
        ("updates sent", f"{figures.updates:,} at {figures.publish_rate:.1f}/s"),
        (
            "lines received",
            f"{figures.delivered:,} of {figures.expected:,}, "
            f"{figures.skipped_conflated:,} skipped for a newer line (missing: "
            f"{figures.missing_late:,} late, {figures.missing_unconnected:,} never connected"
            f"{f', {figures.duplicates:,} twice' if figures.duplicates else ''})",
        ),
        (
            "watchers complete / ended",
            f"{figures.clients_complete:,} / {figures.clients_ended:,} "
            f"(drained {figures.drain_s:.1f}s after the last send)",
        ),
        ("lines per watcher per s", per_watcher(figures.received_per_watcher_per_s)),
        (
            "latency ms p50 p95 p99 max",
            f"{latency['p50']:.1f}  {latency['p95']:.1f}  {latency['p99']:.1f}  "
            f"{latency['max']:.1f}",
        ),
        (
            "API RSS MiB idle/conn/end/after",
            "  ".join(f"{rss[k] / 1024:.1f}" for k in ("idle", "connected", "end", "after_close")),
        ),
        ("API RSS KiB per watcher", f"{figures.server_rss_kb_per_client:.1f}"),
        (
            "API CPU s connect / updates",
            f"{cpu['connect']:.2f} / {cpu['updates']:.2f} "
            f"({figures.server_cpu_share:.0%} of a core while updating)",
        ),
        (
            "client CPU share of a core",
            "  ".join(f"{share:.0%}" for share in figures.client_cpu_share),
        ),
        ("API's own counters", counters(figures)),
        (
            "connect s / publish ms p50 max",
            f"{figures.connect_s:.1f} / {figures.publish_ms_p50:.1f} {figures.publish_ms_max:.1f}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def per_watcher(rates: dict[str, float]) -> str:
    if not rates:
        return "no line arrived"
    return (
        f"{rates['mean']:.1f} mean, {rates['min']:.1f} slowest "
        f"(lines sent: {rates['sent']:.1f}/s over the same window)"
    )


def counters(figures: Figures) -> str:
    found = figures.server_counters
    if not found:
        return "/metrics did not answer within 10 s of the watchers leaving"
    agree = "equal" if figures.api_delivered_matches else "DIFFERENT"
    return (
        f"{found['delivered']:,.0f} delivered ({agree} to the watchers' "
        f"{figures.delivered:,}), {found['conflated']:,.0f} conflated, "
        f"{found['subscribers']:,.0f} streams left after the watchers did"
    )


def verdict(figures: Figures) -> str:
    busiest = max(figures.client_cpu_share, default=0.0)
    if figures.client_bottleneck:
        return f"the clients were the bottleneck: a client process used {busiest:.0%} of a core"
    return (
        f"the clients were not the bottleneck: the busiest client process used {busiest:.0%} of "
        f"a core, the API {figures.server_cpu_share:.0%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1_000, help="watchers (default 1000)")
    parser.add_argument("--updates", type=int, default=200, help="lines to send (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="lines a second (default 20)")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes the watchers share (default 2)"
    )
    parser.add_argument("--bootstrap", help="use this broker (host:port) instead of one's own")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="limit of each wait (default 60 s)"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    parser.add_argument("--keep", type=Path, help="keep the API's log and the broker here")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 20_000:
        parser.error("--clients must be 1 to 20000")
    if not 1 <= args.updates <= 100_000:
        parser.error("--updates must be 1 to 100000")
    if not 0 < args.rate <= 10_000:
        parser.error("--rate must be above 0 and at most 10000")
    if not 1 <= args.client_processes <= min(args.clients, 8):
        parser.error("--client-processes must be 1 to 8, and no more than --clients")

    # A plain kill still stops the broker, the API and the clients.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    raise_open_files(args.clients)
    figures = Figures(
        clients=args.clients,
        updates=args.updates,
        rate=args.rate,
        client_processes=args.client_processes,
        bootstrap=args.bootstrap or "",
        own_broker=args.bootstrap is None,
    )
    machine = common.machine(load_average_at_start=common.load_average())
    with common.workdir(args.keep, "melon-bench-fanout-") as home:
        broker: Broker | None = None
        api: PricingApi | None = None
        try:
            if args.bootstrap is None:
                broker, took = common.start_broker(home)
                figures.bootstrap = broker.bootstrap
                figures.broker_start_s = round(took, 1)
                progress(f"broker {broker.bootstrap} up in {took:.1f}s")
            ensure_topics(figures.bootstrap)
            api = PricingApi(figures.bootstrap, home)
            publisher = KafkaPublisher("pricing", figures.bootstrap)
            try:
                measure(api, publisher, figures, args.timeout)
            finally:
                publisher.close()
        except BenchError as exc:
            progress(f"failed: {exc}")
            if api is not None:
                progress(tail(api.log_file))
            return 1
        finally:
            if api is not None:
                progress("stopping the pricing API")
                api.stop()
            if broker is not None:
                progress("stopping the broker")
                broker.stop()

    print(
        f"Melon Hall price board fan-out, Python {machine['python']} on {machine['cpus']} CPUs "
        f"(load {machine['load_average_at_start'][0]}); {figures.clients:,} watchers, "
        f"{figures.books} books"
    )
    print(table(figures))
    print(verdict(figures))
    if args.json is not None:
        document = {"machine": machine, "figures": asdict(figures)}
        common.write_json(args.json, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
