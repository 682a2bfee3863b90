"""How many lots a second the whole hall carries from the scale to a truck, and how fast.

    python bench/bench_pipeline.py [--seconds 20] [--min-rate 0.5] [--max-rate 8] [--refine 1]
        [--stations 12] [--settle-s 1.0] [--window-ms 1000] [--drain-s 30]
        [--baselines var/bench/baselines.json] [--json out.json] [--keep DIR] [--profile DIR]

The run starts a broker of its own (a temporary folder, free ports on 127.0.0.1) and the hall's
services as separate processes (``melon_devkit.hall``), with ``--stations`` simulated platform
scales instead of the hall's usual two, each settling for ``--settle-s`` after a load change as
the hall's do, and called stable by ingest after ``--window-ms`` of still readings. It drives
the hall only through its front doors:

- lots: one worker per station loads the scale through the simulator's control API, waits for
  ingest to call the weight stable, posts the weighing (``POST /stations/{id}/weighings``), takes
  the load off and waits for the scale to read empty again: the operator's round. It watches the
  scale as the operator's console does, on ``GET /stations/{id}/scale/stream``;
- bids: when a lot is due, a demo merchant bids for exactly its weight in its book, above every
  reserve (``POST /bids``), so every lot trades whole; merchants take turns and each ships to a
  destination of its own, for which one truck of 100 t waits in the yard (``POST /trucks``). A
  lot that finds no free station is not weighed, and its merchant cancels its bid.

Each step starts once the matcher has worked off the commands of the steps before (at most two
minutes). The books still grow from step to step: a book keeps the bids and lots that finished
today and yesterday, so that a command sent again is recognised, and stores them with the book.

Each lot's clock starts at its ``LotWeighed``'s ``occurred_at`` (read from ``lots.weighed``) and
stops at: ``trade`` its ``TradeExecuted``'s ``occurred_at``; ``trade_received`` the moment a
plain consumer here read that trade; ``board`` the arrival of the first live price-board line of
its book counting its trade on a ``GET /board/stream`` watcher; ``truck_suggestion`` the first
answer of ``GET /suggestions`` (polled every 100 ms while a trade is waiting for one) that puts
its trade on a truck. Everything runs on this machine, so the clocks are one.

Rate search: steps of ``--seconds`` at ``--min-rate`` lots a second, doubled up to
``--max-rate``, with a bid per lot. A step holds the rate when the stations kept up (no lot was
still waiting for a free station a round and a half after the step, the wait for one did not
grow, and lots were weighed at 95 % of the offered rate or more) and the hall kept up: ingest
answered a weighing within half a second at p50, the backlog of lots weighed but not yet traded
did not grow over the step, nor did the matcher's consumer lag on ``book.commands``, lots traded
at 95 % of the rate they were weighed or more, the weighing-to-trade latency of the step's last
third was not well above its first third's, and every lot weighed traded within ``--drain-s``.
The doubling stops at the first step that does not hold; ``--refine`` more steps each try the
rate halfway between the highest held and the lowest not held. The latency is then measured in
runs of ``--seconds`` at 50 % and 100 % of the highest rate held. With the defaults the whole
run takes about three minutes.

What limits the rate is said as found: a station's round (settling, ingest's stable window, the
ticket, unloading, the return to zero; each step gives the p50 of each part) bounds what
``--stations`` stations can weigh; the CPU each process used per step shows who was busy. With
``--profile`` every service is recorded with py-spy during the run at 100 % (``sampling.py``):
the report charges each process's samples to the hall's own functions. ``records_per_s`` counts
the records the lots made on every topic but ``scale.readings`` (which the indicators fill at
their own rate regardless). With ``--baselines`` (a ``bench_baselines.py`` JSON) the run prints
that rate over the kafka-python consume-transform-produce loop's.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import common
import httpx
import sampling
from kafka import KafkaConsumer, TopicPartition

from ingest.domain.grading import DEFAULT_PROFILE_ID, PROFILES_DIR, Sample, load_profile
from ingest.settings import StationSetting as IngestStationSetting
from melon_contracts.admin import ensure_topics
from melon_contracts.codec import UndecodableMessage, decode
from melon_contracts.events import LotWeighed, TradeExecuted
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import LOTS_WEIGHED, SCALE_READINGS, TRADES
from melon_contracts.units import yuan_to_fen
from melon_devkit.demo import DEMO_ACCOUNTS, demo_token
from melon_devkit.hall import Hall, HallError, Ports, ServiceProcess
from melon_devkit.kafka import Broker, BrokerError, free_port, kafka_version
from pricing.accounts import Accounts
from pricing.settings import Settings as PricingSettings

ROOT = Path(__file__).resolve().parent.parent
BEGAN = time.monotonic()

GROSS_KG = "80.0"
CRATES = 10
CRATE_TYPE = "plastic-crate"
BRIX = (12.5, 12.8, 13.1)
FRUIT_WEIGHTS_G = (2600, 2450, 2300)
PRICE_YUAN = "9.00"
"""Above every grade's reserve, so a lot never waits for a better bid."""
CREDIT_YUAN = 100_000_000
TRUCK_CAPACITY_KG = "100000"
DIVISION_G = 200
CAPACITY_KG = 1_000
MAX_STATIONS = 128
SCALE_WAIT_S = 30.0
"""Longest wait for a scale to read stable after loading, or empty after unloading."""
TICKET_SLOW_S = 0.5
"""A weighing request slower than this at p50 means ingest, not the scale, holds the round
up: unloaded, it answers in tens of milliseconds."""
SUGGESTION_POLL_S = 0.1
SAMPLE_EVERY_S = 0.5
QUIET_WAIT_S = 120.0
STEP_WAIT_S = 30.0
"""Longest wait for the weighings still on the scales when a step's schedule ends."""
GROWTH_LATENCY_FACTOR = 1.5
GROWTH_LATENCY_SLACK_S = 0.5
MIN_LOTS_FOR_TREND = 6
KEEP_UP = 0.95
"""A step holds only if lots were weighed at this share of the offered rate, and traded at this
share of the rate they were weighed."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BenchError(RuntimeError):
    """Something the run needs did not happen in time."""


class ScaleIncident(BenchError):
    """A scale never read stable or empty (a zero that drifted, say): the operator's trouble
    at one station, counted apart from the hall's failures."""


def progress(message: str) -> None:
    print(f"[{time.monotonic() - BEGAN:5.1f}s] {message}", file=sys.stderr, flush=True)


def epoch_s(moment: datetime) -> float:
    return (moment - EPOCH) / timedelta(seconds=1)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50": round(common.percentile(ordered, 0.50) * 1e3, 1),
        "p95": round(common.percentile(ordered, 0.95) * 1e3, 1),
        "p99": round(common.percentile(ordered, 0.99) * 1e3, 1),
        "max": round((ordered[-1] if ordered else 0.0) * 1e3, 1),
    }


def thirds(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last third of a series (the whole series when short)."""
    if not values:
        return 0.0, 0.0
    size = max(1, len(values) // 3)
    head, tail = values[:size], values[-size:]
    return sum(head) / len(head), sum(tail) / len(tail)


def pace(moments: list[float]) -> float:
    """Events a second between the first and the last of them: n events span n - 1 gaps."""
    if len(moments) < 2:
        return 0.0
    span = max(moments) - min(moments)
    return (len(moments) - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class Station:
    station: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Merchant:
    account_id: str
    destination: str
    plate: str


DESTINATIONS = ("兰州", "西安", "杭州", "成都", "郑州", "乌鲁木齐", "西宁", "银川")


def merchants() -> list[Merchant]:
    ids = [account_id for account_id, _, _, role in DEMO_ACCOUNTS if role == "merchant"]
    return [
        Merchant(account_id, DESTINATIONS[index % len(DESTINATIONS)], f"甘H9{index:04d}")
        for index, account_id in enumerate(ids)
    ]


def make_accounts(path: Path) -> None:
    """The demo accounts with the demo's tokens, each merchant with a limit no run can reach."""
    accounts = Accounts.load(path)
    for account_id, name, _, role in DEMO_ACCOUNTS:
        limit = yuan_to_fen(str(CREDIT_YUAN)) if role == "merchant" else 0
        accounts.add(account_id, name, limit, role=role, token=demo_token(account_id))


def build_hall(
    bootstrap: str, home: Path, stations: list[Station], settle_s: float, window_ms: int
) -> Hall:
    """The hall's services with ``stations`` platform scales in place of its own three.

    The scale simulator, ingest and the gateway are the hall's processes with the hall's
    environment, told about these stations instead.
    """
    hall = Hall(
        bootstrap=bootstrap,
        home=home,
        ports=Ports.free(),
    )
    missing = {"scales", "ingest", "gateway"} - set(hall.services)
    if missing:
        raise BenchError(f"the hall has no {', '.join(sorted(missing))} service to reconfigure")
    scales, ingest, gateway = (hall.services[name] for name in ("scales", "ingest", "gateway"))
    simulated = [
        f"--station={s.station}:{s.port}:{s.protocol}:"
        f"division_g={DIVISION_G},capacity_kg={CAPACITY_KG},settle_s={settle_s:g}"
        for s in stations
    ]
    rate = next((arg for arg in scales.args if arg.startswith("--rate=")), "--rate=10")
    hall.services["scales"] = ServiceProcess(
        scales.name,
        ["-m", "melon_devkit.scalesim", *simulated, f"--control-port={hall.ports.scales}", rate],
        scales.env,
        scales.log_file,
        health_url=scales.health_url,
    )
    settings = [
        {
            "id": s.station,
            "kind": "platform",
            "division_g": DIVISION_G,
            "max_kg": str(CAPACITY_KG),
            "window_ms": window_ms,
        }
        for s in stations
    ]
    hall.services["ingest"] = ServiceProcess(
        ingest.name,
        ingest.args,
        {**ingest.env, "INGEST_STATIONS": json.dumps(settings)},
        ingest.log_file,
        health_url=ingest.health_url,
    )
    indicators = [
        {"station": s.station, "host": "127.0.0.1", "port": s.port, "protocol": s.protocol}
        for s in stations
    ]
    hall.services["gateway"] = ServiceProcess(
        gateway.name,
        gateway.args,
        {**gateway.env, "INGEST_SCALES": json.dumps(indicators)},
        gateway.log_file,
        health_url=gateway.health_url,
    )
    return hall


def process_cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process, all its threads, in seconds; None when it is gone."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of the broker, every service and this run, read from /proc."""

    def __init__(self, broker: Broker, hall: Hall) -> None:
        self.pids: dict[str, int | None] = {
            "broker": broker.pid(),
            "bench": os.getpid(),
            **hall.pids(),
        }

    def read(self) -> dict[str, float | None]:
        return {name: process_cpu_s(pid) for name, pid in self.pids.items()}

    @staticmethod
    def shares(
        before: dict[str, float | None], after: dict[str, float | None], wall_s: float
    ) -> dict[str, float]:
        """Share of one core each process used between two readings."""
        found = {}
        for name, start in before.items():
            end = after.get(name)
            if start is not None and end is not None and wall_s > 0:
                found[name] = round((end - start) / wall_s, 3)
        return found


@dataclass
class Lot:
    lot_id: str
    variety: str
    merchant: Merchant
    bid_id: str
    due_at: float
    bid_at: float | None = None
    bid_error: str = ""
    started_at: float | None = None
    station: str = ""
    stable_at: float | None = None
    ticketed_at: float | None = None
    phases_s: dict[str, float] = field(default_factory=dict)
    """A finished round: ``to_stable``, ``ticket`` (the weighing request), ``to_empty``."""
    done_at: float | None = None
    error: str = ""
    incident: str = ""
    """Why the lot's scale never came to rest (not the hall's failure); the lot is not weighed."""
    dropped: bool = False


@dataclass
class Trade:
    trade_id: str
    book: str
    sequence: int
    occurred_at: float
    received_at: float


class Seen:
    """What the run's consumer, board watcher and suggestion poller saw, by lot and trade."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.weighed: dict[str, float] = {}
        self.trades: dict[str, Trade] = {}
        self.board: dict[str, list[tuple[int, float]]] = {}
        self.suggested: dict[str, float] = {}
        self.waiting_suggestion: set[str] = set()

    def on_weighed(self, event: LotWeighed) -> None:
        with self.lock:
            self.weighed.setdefault(event.lot_id, epoch_s(event.occurred_at))

    def on_trade(self, event: TradeExecuted, received_at: float) -> None:
        with self.lock:
            if event.lot_id in self.trades:
                return
            self.trades[event.lot_id] = Trade(
                event.trade_id,
                event.book,
                event.sequence,
                epoch_s(event.occurred_at),
                received_at,
            )
            self.waiting_suggestion.add(event.trade_id)

    def on_board(self, book: str, trades: int, arrived_at: float) -> None:
        with self.lock:
            self.board.setdefault(book, []).append((trades, arrived_at))

    def on_suggestion(self, trade_ids: set[str], answered_at: float) -> None:
        with self.lock:
            for trade_id in trade_ids & self.waiting_suggestion:
                self.suggested[trade_id] = answered_at
            self.waiting_suggestion -= trade_ids

    def board_arrival(self, trade: Trade) -> float | None:
        """The first live line of the trade's book that counts it; lines of a book come in
        order, so the first with at least its sequence is the one its command made."""
        with self.lock:
            lines = list(self.board.get(trade.book, ()))
        return next((at for count, at in lines if count >= trade.sequence), None)

    def counts(self, lot_ids: list[str]) -> tuple[int, int]:
        with self.lock:
            weighed = sum(1 for lot_id in lot_ids if lot_id in self.weighed)
            traded = sum(1 for lot_id in lot_ids if lot_id in self.trades)
        return weighed, traded


class TopicWatcher(threading.Thread):
    """A plain consumer of ``lots.weighed`` and ``trades`` from their ends at the start."""

    def __init__(self, bootstrap: str, seen: Seen) -> None:
        super().__init__(name="topics", daemon=True)
        self.seen = seen
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="melon-bench-pipeline",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        self.specs = {spec.name: spec for spec in (LOTS_WEIGHED, TRADES)}
        partitions = [
            TopicPartition(spec.name, p)
            for spec in self.specs.values()
            for p in range(spec.partitions)
        ]
        self.consumer.assign(partitions)
        self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            self.consumer.position(partition)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                received = time.time()
                for partition, records in batches.items():
                    spec = self.specs[partition.topic]
                    for record in records:
                        try:
                            event = decode(spec, record.value)
                        except UndecodableMessage as exc:
                            self.errors.append(str(exc))
                            continue
                        if isinstance(event, LotWeighed):
                            self.seen.on_weighed(event)
                        elif isinstance(event, TradeExecuted):
                            self.seen.on_trade(event, received)
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class SseParser:
    """Server-sent events out of the raw bytes of an HTTP/1.1 response, chunked or not."""

    def __init__(self) -> None:
        self.raw = b""
        self.text = b""
        self.head_done = False
        self.chunked = False
        self.data_left = 0
        self.crlf_left = 0
        self.ended = False

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            head = self.raw[:end].decode("latin-1").lower()
            status = head.split("\r\n", 1)[0]
            if " 200" not in status:
                raise OSError(f"the stream answered {status!r}")
            self.chunked = "transfer-encoding: chunked" in head
            self.raw = self.raw[end + 4 :]
            self.head_done = True
        if self.chunked:
            self._dechunk()
        else:
            self.text, self.raw = self.text + self.raw, b""
        events = []
        while (cut := self.text.find(b"\n\n")) >= 0:
            block, self.text = self.text[:cut], self.text[cut + 2 :]
            name, lines = "message", []
            for line in block.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8")
                elif line.startswith(b"data:"):
                    lines.append(line[5:].removeprefix(b" ").decode("utf-8"))
            if lines:
                events.append((name, "\n".join(lines)))
        return events

    def _dechunk(self) -> None:
        while self.raw and not self.ended:
            if self.crlf_left:
                take = min(self.crlf_left, len(self.raw))
                self.raw, self.crlf_left = self.raw[take:], self.crlf_left - take
                continue
            if self.data_left:
                take = min(self.data_left, len(self.raw))
                self.text += self.raw[:take]
                self.raw, self.data_left = self.raw[take:], self.data_left - take
                if not self.data_left:
                    self.crlf_left = 2
                continue
            eol = self.raw.find(b"\r\n")
            if eol < 0:
                return
            size = int(self.raw[:eol].split(b";")[0], 16)
            self.raw = self.raw[eol + 2 :]
            if size == 0:
                self.ended = True
                return
            self.data_left = size


class SseReader(threading.Thread):
    """One ``text/event-stream`` on 127.0.0.1, read off a plain socket; reconnects if the
    stream ends. ``on_event`` gets each event with the moment its bytes arrived."""

    def __init__(self, port: int, path: str, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.connects = 0
        self.errors: list[str] = []
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode("ascii")

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except (OSError, ValueError) as exc:
                self.errors.append(repr(exc))
            self.stopping.wait(0.5)

    def _read(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            self.connects += 1
            self.on_connect()
            sock.sendall(self.request)
            sock.settimeout(0.5)
            parser = SseParser()
            while not self.stopping.is_set():
                try:
                    data = sock.recv(65_536)
                except TimeoutError:
                    continue
                if not data:
                    return
                arrived = time.time()
                for name, payload in parser.feed(data):
                    self.on_event(name, payload, arrived)
                if parser.ended:
                    return

    def on_connect(self) -> None:
        """A new connection; what came before it is history."""

    def on_event(self, name: str, payload: str, arrived: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


class BoardWatcher(SseReader):
    """One watcher of ``GET /board/stream``, as the LED wall is: it notes when each live line
    arrives (the snapshot before ``ready`` does not count)."""

    def __init__(self, port: int, seen: Seen) -> None:
        super().__init__(port, "/board/stream", "board")
        self.seen = seen
        self.ready = threading.Event()
        self.live = False

    def on_connect(self) -> None:
        self.live = False

    def on_event(self, name: str, payload: str, arrived: float) -> None:
        if name == "ready":
            self.live = True
            self.ready.set()
        elif name == "board" and self.live:
            line = json.loads(payload)
            self.seen.on_board(line["book"], int(line["trades"]), arrived)


class ScaleWatcher(SseReader):
    """A station's console view: ``GET /stations/{id}/scale/stream``, the latest view kept."""

    def __init__(self, port: int, station: str) -> None:
        super().__init__(port, f"/stations/{station}/scale/stream", f"scale-{station}")
        self.station = station
        self.changed = threading.Condition()
        self.view: dict[str, Any] = {}

    def on_connect(self) -> None:
        with self.changed:
            self.view = {}

    def on_event(self, name: str, payload: str, arrived: float) -> None:
        if name == "scale":
            with self.changed:
                self.view = json.loads(payload)
                self.changed.notify_all()

    def wait(self, want: str, timeout_s: float) -> None:
        """Until ingest calls the scale ``stable`` (not yet taken) or ``empty``."""

        def reached() -> bool:
            view = self.view
            if want == "stable":
                return bool(view.get("stable")) and not view.get("taken")
            return view.get("status") == "empty"

        with self.changed:
            if not self.changed.wait_for(reached, timeout=timeout_s):
                raise ScaleIncident(
                    f"scale {self.station} not {want} within {timeout_s:.0f}s: {self.view}"
                )


class SuggestionPoller(threading.Thread):
    """Asks dispatch for its suggested loads every 100 ms while a trade waits to be on one."""

    def __init__(self, url: str, seen: Seen) -> None:
        super().__init__(name="suggestions", daemon=True)
        self.url = url
        self.seen = seen
        self.stopping = threading.Event()
        self.polls = 0
        self.errors: list[str] = []
        self.answer_s: list[float] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stopping.is_set():
                began = time.monotonic()
                with self.seen.lock:
                    waiting = bool(self.seen.waiting_suggestion)
                if waiting:
                    self._poll(http)
                self.stopping.wait(max(0.0, SUGGESTION_POLL_S - (time.monotonic() - began)))

    def _poll(self, http: httpx.Client) -> None:
        began = time.monotonic()
        try:
            response = http.get(f"{self.url}/suggestions")
        except httpx.HTTPError as exc:
            self.errors.append(repr(exc))
            return
        answered = time.time()
        self.polls += 1
        self.answer_s.append(time.monotonic() - began)
        if response.status_code != 200:
            self.errors.append(f"{response.status_code} {response.text[:200]}")
            return
        trade_ids = {
            trade_id
            for load in response.json()["loads"]
            for part in load["parts"]
            for trade_id in part["trade_ids"]
        }
        self.seen.on_suggestion(trade_ids, answered)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=35)


def matcher_lag(http: httpx.Client, url: str) -> float | None:
    """The matcher's own gauge of commands behind the end of ``book.commands``, all partitions."""
    try:
        text = http.get(f"{url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("melon_pricing_consumer_lag{")
    ]
    return sum(values) if values else 0.0


class TopicOffsets:
    """Records on the hall's topics (their end offsets), ``scale.readings`` aside."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="melon-bench-offsets")

    def by_topic(self) -> dict[str, int]:
        topics = {
            name
            for name in self.consumer.topics()
            if not name.startswith("__") and name != SCALE_READINGS.name
        }
        partitions = [
            TopicPartition(name, p)
            for name in sorted(topics)
            for p in sorted(self.consumer.partitions_for_topic(name) or ())
        ]
        found: dict[str, int] = {}
        for partition, offset in self.consumer.end_offsets(partitions).items():
            found[partition.topic] = found.get(partition.topic, 0) + offset
        return found

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class Urls:
    ingest: str
    scales: str
    pricing: str
    dispatch: str
    matcher: str


def lot_body(lot_id: str, variety: str, serial: int) -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "farmer_id": f"farmer-{serial % 40:02d}",
        "village_group": "红沙梁3组",
        "variety": variety,
        "harvest_date": datetime.now(UTC).date().isoformat(),
        "crates": CRATES,
        "crate_type": CRATE_TYPE,
        "sample": {"brix": list(BRIX), "fruit_weights_g": list(FRUIT_WEIGHTS_G)},
        "operator_id": "op-bench",
    }


def weigh(
    http: httpx.Client, urls: Urls, scale: ScaleWatcher, lot: Lot, serial: int
) -> dict[str, Any]:
    """One operator's round at a platform scale, with the console's view of it; the ticket."""
    station = scale.station
    loaded = time.time()
    http.post(f"{urls.scales}/scales/{station}/load", json={"kg": GROSS_KG}).raise_for_status()
    try:
        scale.wait("stable", SCALE_WAIT_S)
        lot.stable_at = time.time()
        response = http.post(
            f"{urls.ingest}/stations/{station}/weighings",
            json=lot_body(lot.lot_id, lot.variety, serial),
        )
        if response.status_code != 201:
            raise BenchError(f"{lot.lot_id}: {response.status_code} {response.text[:300]}")
        lot.ticketed_at = time.time()
        lot.phases_s = {
            "to_stable": lot.stable_at - loaded,
            "ticket": lot.ticketed_at - lot.stable_at,
        }
        ticket: dict[str, Any] = response.json()
        return ticket
    finally:
        unloaded = time.time()
        http.post(f"{urls.scales}/scales/{station}/unload").raise_for_status()
        scale.wait("empty", SCALE_WAIT_S)
        if lot.phases_s:
            lot.phases_s["to_empty"] = time.time() - unloaded


def cancel_bid(http: httpx.Client, urls: Urls, lot: Lot) -> bool:
    """The merchant takes back the bid of a lot that never reached a scale."""
    response = http.post(
        f"{urls.pricing}/bids/{lot.bid_id}/cancel",
        headers={"Authorization": f"Bearer {demo_token(lot.merchant.account_id)}"},
    )
    return response.status_code == 202


def place_bid(http: httpx.Client, urls: Urls, lot: Lot, grade: Grade, net_kg: str) -> None:
    response = http.post(
        f"{urls.pricing}/bids",
        headers={"Authorization": f"Bearer {demo_token(lot.merchant.account_id)}"},
        json={
            "bid_id": lot.bid_id,
            "variety": lot.variety,
            "grade": grade.value,
            "price_yuan_per_kg": PRICE_YUAN,
            "quantity_kg": net_kg,
            "destination": lot.merchant.destination,
            "cold_chain": False,
            "expires_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        },
    )
    if response.status_code != 202:
        raise BenchError(f"bid {lot.bid_id}: {response.status_code} {response.text[:300]}")


class Stations:
    """One worker thread per station, each taking the next due lot from a shared queue."""

    def __init__(self, urls: Urls, stations: list[Station]) -> None:
        self.urls = urls
        self.due: queue.Queue[Lot | None] = queue.Queue()
        self.lock = threading.Lock()
        self.rounds: list[float] = []
        self.serial = itertools.count()
        port = urlsplit(urls.ingest).port
        if port is None:
            raise BenchError(f"no port in ingest's URL {urls.ingest}")
        self.scales = {s.station: ScaleWatcher(port, s.station) for s in stations}
        for watcher in self.scales.values():
            watcher.start()
        self.threads = [
            threading.Thread(target=self._work, args=(s.station,), name=s.station, daemon=True)
            for s in stations
        ]
        for thread in self.threads:
            thread.start()

    def _work(self, station: str) -> None:
        with httpx.Client(timeout=30) as http:
            while (lot := self.due.get()) is not None:
                lot.started_at, lot.station = time.time(), station
                try:
                    weigh(http, self.urls, self.scales[station], lot, next(self.serial))
                except ScaleIncident as exc:
                    lot.incident = str(exc)[:300]
                except (BenchError, httpx.HTTPError, ValueError, KeyError) as exc:
                    lot.error = str(exc)[:300]
                lot.done_at = time.time()
                with self.lock:
                    self.rounds.append(lot.done_at - lot.started_at)

    def waiting(self) -> int:
        return self.due.qsize()

    def drop_waiting(self) -> list[Lot]:
        """Take back the lots no station started; they are not weighed."""
        dropped: list[Lot] = []
        while True:
            try:
                lot = self.due.get_nowait()
            except queue.Empty:
                return dropped
            if lot is not None:
                lot.dropped = True
                dropped.append(lot)

    def stop(self) -> None:
        self.drop_waiting()
        for _ in self.threads:
            self.due.put(None)
        for thread in self.threads:
            thread.join(timeout=40)
        for watcher in self.scales.values():
            watcher.stop()


@dataclass
class Step:
    """One run at an offered rate: what was offered, what was done, and how it held."""

    label: str
    rate: float
    seconds: float
    lots: int = 0
    bids_placed: int = 0
    bid_failures: int = 0
    bid_rate: float = 0.0
    weighed: int = 0
    weigh_failures: int = 0
    scale_incidents: int = 0
    dropped: int = 0
    traded: int = 0
    on_board: int = 0
    suggested: int = 0
    weigh_rate: float = 0.0
    trade_rate: float = 0.0
    station_round_s: dict[str, float] = field(default_factory=dict)
    round_phases_s: dict[str, float] = field(default_factory=dict)
    """p50 of each part of a round: to stable, the weighing request, back to zero; p95 too for
    the request."""
    station_wait_s: dict[str, float] = field(default_factory=dict)
    backlog: dict[str, float] = field(default_factory=dict)
    matcher_lag: dict[str, float] = field(default_factory=dict)
    trade_latency_s: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    records: int = 0
    records_by_topic: dict[str, int] = field(default_factory=dict)
    records_per_s: float = 0.0
    records_per_lot: float = 0.0
    cpu_share: dict[str, float] = field(default_factory=dict)
    drain_s: float = 0.0
    quiet_s: float = 0.0
    """Waited before the step for the matcher to finish an earlier step's commands."""
    bids_cancelled: int = 0
    """Bids of lots that found no free station, taken back by their merchants."""
    held: bool = False
    stations_limited: bool = False
    hall_limited: bool = False
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Run:
    """The hall under test and what watches it."""

    def __init__(
        self,
        urls: Urls,
        stations: list[Station],
        seen: Seen,
        grade: Grade,
        offsets: TopicOffsets,
        cpu: CpuMeter,
        drain_s: float,
    ) -> None:
        self.urls = urls
        self.station_count = len(stations)
        self.workers = Stations(urls, stations)
        self.seen = seen
        self.grade = grade
        self.offsets = offsets
        self.cpu = cpu
        self.drain_s = drain_s
        self.merchants = merchants()
        self.varieties = sorted(VARIETIES)
        self.serial = 0
        self.run_id = uuid.uuid4().hex[:6]
        self.net_kg = ""
        self.http = httpx.Client(timeout=30)

    def close(self) -> None:
        self.workers.stop()
        self.http.close()

    def new_lot(self, label: str, due_at: float) -> Lot:
        serial = self.serial
        self.serial += 1
        tag = re.sub(r"[^A-Za-z0-9.]", "", label)
        return Lot(
            lot_id=f"PB-{self.run_id}-{tag}-{serial:05d}",
            variety=self.varieties[serial % len(self.varieties)],
            merchant=self.merchants[serial % len(self.merchants)],
            bid_id=f"PB-{self.run_id}-B{serial:05d}",
            due_at=due_at,
        )

    def check_in_trucks(self) -> None:
        for merchant in self.merchants:
            response = self.http.post(
                f"{self.urls.dispatch}/trucks",
                json={
                    "plate": merchant.plate,
                    "driver": "bench",
                    "capacity_kg": TRUCK_CAPACITY_KG,
                    "refrigerated": False,
                    "destinations": [merchant.destination],
                    "checked_in_by": "op-bench",
                },
            )
            if response.status_code != 201:
                raise BenchError(f"truck {merchant.plate}: {response.status_code} {response.text}")

    def warm_up(self, timeout_s: float) -> dict[str, Any]:
        """One lot weighed, then bid for at its ticket's net weight, followed to its truck.

        Checks that the lot's grade is the one the bids name and fixes the net weight every later
        bid asks for; it also lets every consumer group in the hall settle before the clock runs.
        """
        lot = self.new_lot("warm", time.time())
        began = time.monotonic()
        ticket = weigh(self.http, self.urls, self.workers.scales["ws-1"], lot, 0)
        self.net_kg = str(ticket["net_kg"])
        place_bid(self.http, self.urls, lot, self.grade, self.net_kg)
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            with self.seen.lock:
                trade = self.seen.trades.get(lot.lot_id)
                suggested = trade is not None and trade.trade_id in self.seen.suggested
            if suggested:
                return {"net_kg": self.net_kg, "seconds": round(time.monotonic() - began, 1)}
            time.sleep(0.2)
        with self.seen.lock:
            weighed = lot.lot_id in self.seen.weighed
            traded = lot.lot_id in self.seen.trades
        raise BenchError(
            f"the warm-up lot {lot.lot_id} did not reach a truck suggestion within "
            f"{timeout_s:.0f}s (weighed: {weighed}, traded: {traded}; its grade is expected to "
            f"be {self.grade.value})"
        )

    def quiet(self) -> float:
        """Wait (bounded) until the matcher has no command left from an earlier step, so each
        step starts on an idle hall; the seconds waited."""
        began = time.monotonic()
        still = 0
        while time.monotonic() - began < QUIET_WAIT_S and still < 2:
            lag = matcher_lag(self.http, self.urls.matcher)
            still = still + 1 if not lag else 0
            time.sleep(SAMPLE_EVERY_S)
        return round(time.monotonic() - began, 1)

    def step(self, label: str, rate: float, seconds: float) -> Step:
        step = Step(label, rate, seconds)
        step.quiet_s = self.quiet()
        count = max(1, round(rate * seconds))
        lots: list[Lot] = []
        samples: list[tuple[int, int, float | None]] = []
        sampling = threading.Event()
        sampler_http = httpx.Client(timeout=5)

        def sample() -> None:
            while not sampling.wait(SAMPLE_EVERY_S):
                ids = [lot.lot_id for lot in list(lots)]
                weighed, traded = self.seen.counts(ids)
                lag = matcher_lag(sampler_http, self.urls.matcher)
                samples.append((weighed, traded, lag))

        records_before = self.offsets.by_topic()
        cpu_before, wall_before = self.cpu.read(), time.monotonic()
        sampler = threading.Thread(target=sample, name="sampler", daemon=True)
        sampler.start()
        started = time.time()
        for index in range(count):
            due = started + index / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            lot = self.new_lot(label, due)
            lots.append(lot)
            try:
                place_bid(self.http, self.urls, lot, self.grade, self.net_kg)
                lot.bid_at = time.time()
            except (BenchError, httpx.HTTPError) as exc:
                lot.bid_error = str(exc)[:300]
            self.workers.due.put(lot)
        schedule_end = max(time.time(), started + count / rate)
        time.sleep(max(0.0, schedule_end - time.time()))
        sampling.set()
        sampler.join(timeout=5)
        sampler_http.close()
        step.lots = len(lots)
        placed = [lot.bid_at for lot in lots if lot.bid_at is not None]
        step.bids_placed = len(placed)
        step.bid_failures = step.lots - step.bids_placed
        step.bid_rate = round(step.bids_placed / (schedule_end - started), 3)
        self._finish_weighing(lots, step)
        orphans = [lot for lot in lots if (lot.dropped or lot.incident) and lot.bid_at is not None]
        step.bids_cancelled = sum(cancel_bid(self.http, self.urls, lot) for lot in orphans)
        drain_began = time.monotonic()
        self._drain(lots)
        step.drain_s = round(time.monotonic() - drain_began, 1)
        records_after = self.offsets.by_topic()
        step.records_by_topic = {
            topic: count - records_before.get(topic, 0)
            for topic, count in sorted(records_after.items())
            if count > records_before.get(topic, 0)
        }
        step.records = sum(step.records_by_topic.values())
        wall = time.monotonic() - wall_before
        step.cpu_share = CpuMeter.shares(cpu_before, self.cpu.read(), wall)
        self._figures(step, lots, samples, started, schedule_end)
        return step

    def _finish_weighing(self, lots: list[Lot], step: Step) -> None:
        """Lots still waiting for a station a round and a half after the schedule are not
        weighed; the ones on a scale are finished."""
        rounds = sorted(self.workers.rounds[-50:]) or [5.0]
        grace = max(3.0, 1.5 * common.percentile(rounds, 0.5))
        deadline = time.monotonic() + grace
        while self.workers.waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        step.dropped = len(self.workers.drop_waiting())
        deadline = time.monotonic() + STEP_WAIT_S

        def unfinished() -> list[Lot]:
            return [lot for lot in lots if not lot.dropped and lot.done_at is None]

        while unfinished() and time.monotonic() < deadline:
            time.sleep(0.05)
        if unfinished():
            step.errors.append(f"{len(unfinished())} weighings did not end in {STEP_WAIT_S}s")

    def _drain(self, lots: list[Lot]) -> None:
        """Wait (bounded) until every lot weighed has traded, shown on the board and been put
        on a truck suggestion."""
        ids = [lot.lot_id for lot in lots if lot.ticketed_at is not None]
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            with self.seen.lock:
                trades = [self.seen.trades.get(lot_id) for lot_id in ids]
                weighed = all(lot_id in self.seen.weighed for lot_id in ids)
                suggested = all(t is not None and t.trade_id in self.seen.suggested for t in trades)
            boarded = all(t is not None and self.seen.board_arrival(t) is not None for t in trades)
            if weighed and suggested and boarded:
                return
            time.sleep(0.1)

    def _figures(
        self,
        step: Step,
        lots: list[Lot],
        samples: list[tuple[int, int, float | None]],
        started: float,
        schedule_end: float,
    ) -> None:
        ticketed = [lot for lot in lots if lot.ticketed_at is not None]
        step.weighed = len(ticketed)
        step.weigh_failures = sum(1 for lot in lots if lot.error)
        step.scale_incidents = sum(1 for lot in lots if lot.incident)
        step.errors += [lot.incident for lot in lots if lot.incident][:3]
        step.errors += [lot.error for lot in lots if lot.error][:3]
        step.errors += [lot.bid_error for lot in lots if lot.bid_error][:3]
        span = schedule_end - started
        rows: list[tuple[Lot, float, Trade | None]] = []
        with self.seen.lock:
            for lot in ticketed:
                weighed_at = self.seen.weighed.get(lot.lot_id)
                if weighed_at is not None:
                    rows.append((lot, weighed_at, self.seen.trades.get(lot.lot_id)))
            suggested = dict(self.seen.suggested)
        rows.sort(key=lambda row: row[1])
        step.weigh_rate = round(pace([weighed_at for _, weighed_at, _ in rows]), 3)
        step.trade_rate = round(pace([t.occurred_at for _, _, t in rows if t is not None]), 3)
        latencies: dict[str, list[float]] = {
            "trade": [],
            "trade_received": [],
            "board": [],
            "truck_suggestion": [],
        }
        to_trade: list[float] = []
        for _, weighed_at, trade in rows:
            if trade is None:
                continue
            step.traded += 1
            to_trade.append(trade.occurred_at - weighed_at)
            latencies["trade"].append(trade.occurred_at - weighed_at)
            latencies["trade_received"].append(trade.received_at - weighed_at)
            board = self.seen.board_arrival(trade)
            if board is not None:
                step.on_board += 1
                latencies["board"].append(board - weighed_at)
            if trade.trade_id in suggested:
                step.suggested += 1
                latencies["truck_suggestion"].append(suggested[trade.trade_id] - weighed_at)
        step.latency_ms = {name: summary_ms(values) for name, values in latencies.items()}
        rounds = sorted(
            lot.done_at - lot.started_at for lot in ticketed if lot.done_at and lot.started_at
        )
        step.station_round_s = {
            "p50": round(common.percentile(rounds, 0.5), 2),
            "max": round(rounds[-1] if rounds else 0.0, 2),
        }
        step.round_phases_s = round_phases([lot.phases_s for lot in ticketed if lot.phases_s])
        waits = [lot.started_at - lot.due_at for lot in lots if lot.started_at is not None]
        first, last = thirds(waits)
        step.station_wait_s = {
            "first_third": round(first, 2),
            "last_third": round(last, 2),
            "max": round(max(waits, default=0.0), 2),
        }
        backlog = [float(weighed - traded) for weighed, traded, _ in samples]
        first_b, last_b = thirds(backlog)
        step.backlog = {
            "first_third": round(first_b, 2),
            "last_third": round(last_b, 2),
            "max": max(backlog, default=0.0),
        }
        lags = [lag for _, _, lag in samples if lag is not None]
        first_l, last_l = thirds(lags)
        step.matcher_lag = {
            "first_third": round(first_l, 2),
            "last_third": round(last_l, 2),
            "max": max(lags, default=0.0),
        }
        first_t, last_t = thirds(to_trade)
        step.trade_latency_s = {"first_third": round(first_t, 3), "last_third": round(last_t, 3)}
        step.records_per_s = round(step.records / span, 1) if span else 0.0
        step.records_per_lot = round(step.records / step.lots, 1) if step.lots else 0.0
        judge(step, self.station_count)


def round_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    found = {}
    for name in ("to_stable", "ticket", "to_empty"):
        values = sorted(p[name] for p in phases if name in p)
        found[name] = round(common.percentile(values, 0.5), 3)
    tickets = sorted(p["ticket"] for p in phases if "ticket" in p)
    found["ticket_p95"] = round(common.percentile(tickets, 0.95), 3)
    return found


def judge(step: Step, stations: int) -> None:
    """Whether the step held its rate, and if not whether the stations or the hall fell behind."""
    allowance = max(2.0, step.rate * 1.0)
    round_s = step.station_round_s.get("p50", 0.0)
    wait = step.station_wait_s
    if step.dropped:
        step.stations_limited = True
        step.reasons.append(f"{step.dropped} lots found no free station")
    elif wait["last_third"] - wait["first_third"] > max(1.0, 0.5 * round_s):
        step.stations_limited = True
        step.reasons.append(
            f"the wait for a free station grew from {wait['first_third']:.1f}s to "
            f"{wait['last_third']:.1f}s"
        )
    if step.lots >= MIN_LOTS_FOR_TREND and step.weigh_rate < KEEP_UP * step.rate:
        step.stations_limited = True
        step.reasons.append(
            f"the stations weighed {step.weigh_rate:.1f} of the {step.rate:g} lots/s offered"
        )
    phases = step.round_phases_s
    if step.stations_limited and round_s:
        step.reasons.append(
            f"{stations} stations at {round_s:.1f}s a round weigh at most "
            f"{stations / round_s:.1f} lots/s (p50: {phases.get('to_stable', 0):.2f}s to "
            f"stable, {phases.get('ticket', 0):.2f}s for the ticket, "
            f"{phases.get('to_empty', 0):.2f}s back to zero)"
        )
    if phases.get("ticket", 0.0) > TICKET_SLOW_S:
        step.hall_limited = True
        step.reasons.append(
            f"ingest took {phases['ticket']:.2f}s at p50 ({phases['ticket_p95']:.2f}s at p95) "
            "to ticket a weighing"
        )
    if step.backlog["last_third"] - step.backlog["first_third"] > allowance:
        step.hall_limited = True
        step.reasons.append(
            f"lots weighed but not traded grew from {step.backlog['first_third']:.1f} to "
            f"{step.backlog['last_third']:.1f}"
        )
    if step.matcher_lag["last_third"] - step.matcher_lag["first_third"] > allowance:
        step.hall_limited = True
        step.reasons.append(
            f"the matcher's lag on book.commands grew from {step.matcher_lag['first_third']:.1f} "
            f"to {step.matcher_lag['last_third']:.1f}"
        )
    latency = step.trade_latency_s
    if (
        step.traded >= MIN_LOTS_FOR_TREND
        and latency["last_third"]
        > GROWTH_LATENCY_FACTOR * latency["first_third"] + GROWTH_LATENCY_SLACK_S
    ):
        step.hall_limited = True
        step.reasons.append(
            f"weighing-to-trade latency grew from {latency['first_third']:.2f}s to "
            f"{latency['last_third']:.2f}s"
        )
    if step.traded >= MIN_LOTS_FOR_TREND and step.trade_rate < KEEP_UP * step.weigh_rate:
        step.hall_limited = True
        step.reasons.append(
            f"the matcher traded {step.trade_rate:.1f} of the {step.weigh_rate:.1f} lots/s weighed"
        )
    if step.traded < step.weighed:
        step.hall_limited = True
        step.reasons.append(f"{step.weighed - step.traded} lots weighed did not trade in time")
    if step.weigh_failures or step.bid_failures:
        step.reasons.append(f"{step.weigh_failures} weighings and {step.bid_failures} bids failed")
    step.held = not (
        step.stations_limited or step.hall_limited or step.weigh_failures or step.bid_failures
    )


def rates(low: float, high: float) -> list[float]:
    """``low``, doubled while at most ``high``, and ``high`` itself last."""
    found = []
    rate = low
    while rate < high - 1e-9:
        found.append(round(rate, 3))
        rate *= 2
    found.append(round(high, 3))
    return found


def busiest(cpu: dict[str, float]) -> str:
    ranked = sorted(cpu.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{name} {share:.0%}" for name, share in ranked)


def limit_text(steps: list[Step], sustained: float, max_rate: float, cpus: int) -> str:
    failed = min((s for s in steps if not s.held), key=lambda s: s.rate, default=None)
    if failed is None:
        return (
            f"not reached: every offered rate up to --max-rate {max_rate:g} lots/s held; the "
            "hall may carry more"
        )
    total_cpu = sum(failed.cpu_share.values())
    cpu = (
        f"CPU at {failed.rate:g} lots/s: {total_cpu:.2f} of {cpus} cores in use "
        f"(busiest: {busiest(failed.cpu_share)})"
    )
    if failed.stations_limited and not failed.hall_limited:
        who = "the weigh stations: " + "; ".join(failed.reasons)
    elif failed.hall_limited and not failed.stations_limited:
        who = "the hall behind the scales: " + "; ".join(failed.reasons)
    else:
        who = "; ".join(failed.reasons) or "errors"
    held = f"{sustained:g} lots/s held" if sustained else "no step held"
    return f"{held}; at {failed.rate:g} lots/s the limit was {who}. {cpu}"


def table(rows: list[list[str]], text_columns: tuple[int, ...] = ()) -> str:
    """Columns padded to their widest cell, figures to the right and ``text_columns`` to the
    left; the last column is left as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(
            [
                cell.ljust(width) if index in text_columns else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=False))
            ]
            + [row[-1]]
        )
        for row in rows
    )


def thirds_cell(figures: dict[str, float], digits: int = 1) -> str:
    return f"{figures['first_third']:.{digits}f}>{figures['last_third']:.{digits}f}"


def step_table(steps: list[Step]) -> str:
    rows = [
        [
            "offered/s",
            "lots",
            "bids/s",
            "weighed/s",
            "traded/s",
            "round s",
            "wait s",
            "backlog",
            "lag",
            "ticket ms",
            "trade ms p50/p95",
            "records/s",
            "verdict",
        ]
    ]
    for s in steps:
        trade = s.latency_ms.get("trade", {})
        rows.append(
            [
                f"{s.rate:g}",
                str(s.lots),
                f"{s.bid_rate:.2f}",
                f"{s.weigh_rate:.2f}",
                f"{s.trade_rate:.2f}",
                f"{s.station_round_s.get('p50', 0):.1f}",
                thirds_cell(s.station_wait_s),
                thirds_cell(s.backlog),
                thirds_cell(s.matcher_lag, 0),
                f"{s.round_phases_s.get('ticket', 0) * 1e3:.0f}",
                f"{trade.get('p50', 0):.0f}/{trade.get('p95', 0):.0f}",
                f"{s.records_per_s:.1f}",
                "held" if s.held else "NOT held: " + "; ".join(s.reasons[:2]),
            ]
        )
    legend = "wait s, backlog, lag: the mean over the step's first third > over its last third"
    return legend + "\n" + table(rows)


EFFECTS = ("trade", "trade_received", "board", "truck_suggestion")


def latency_table(runs: dict[str, Step]) -> str:
    rows = [["run", "lots/s", "from LotWeighed to", "p50 ms", "p95 ms", "p99 ms", "max ms", "n"]]
    for name, step in runs.items():
        for effect in EFFECTS:
            f = step.latency_ms[effect]
            rows.append(
                [
                    name,
                    f"{step.rate:g}",
                    effect,
                    *(f"{f[key]:.0f}" for key in ("p50", "p95", "p99", "max")),
                    str(f["n"]),
                ]
            )
    return table(rows, text_columns=(0, 2))


def baseline_ratio(path: Path | None, records_per_s: float) -> dict[str, Any] | None:
    """The pipeline's records a second over the client loop's, from a baselines JSON."""
    if path is None or not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        loop = float(document["baselines"]["client"]["loop"]["records_per_s"])
    except (ValueError, KeyError, TypeError):
        return None
    age_s = time.time() - path.stat().st_mtime
    return {
        "baselines": str(path),
        "baselines_age_s": round(age_s),
        "client_loop_records_per_s": loop,
        "pipeline_records_per_s": records_per_s,
        "pipeline_over_client_loop": round(records_per_s / loop, 5) if loop else 0.0,
    }


def expected_grade() -> Grade:
    profile = load_profile(PROFILES_DIR / f"{DEFAULT_PROFILE_ID}.yaml")
    return profile.grade(Sample(brix=BRIX, fruit_weights_g=FRUIT_WEIGHTS_G)).grade


def measure(args: argparse.Namespace, home: Path, document: dict[str, Any]) -> None:
    stations = [
        Station(f"ws-{n}", free_port(), "mt-sics" if n % 2 else "xk3190")
        for n in range(1, args.stations + 1)
    ]
    grade = expected_grade()
    reserve = PricingSettings().reserve_fen_per_kg[grade]
    if yuan_to_fen(PRICE_YUAN) < reserve:
        raise BenchError(f"the bids' price is below the {grade.value} reserve")
    broker, took = common.start_broker(home)
    document["startup"] = {"broker_s": round(took, 1)}
    progress(f"broker {broker.bootstrap} (Kafka {kafka_version()}) up in {took:.1f}s")
    hall: Hall | None = None
    cleanup: list[Callable[[], None]] = []
    try:
        ensure_topics(broker.bootstrap)
        hall = build_hall(broker.bootstrap, home / "hall", stations, args.settle_s, args.window_ms)
        make_accounts(hall.merchants_file)
        took = hall.start(timeout_s=120)
        document["startup"]["hall_s"] = round(took, 1)
        progress(
            f"{len(hall.services)} services with {len(stations)} stations ready in {took:.1f}s"
        )
        urls = Urls(
            ingest=hall.url("ingest"),
            scales=hall.url("scales"),
            pricing=hall.url("pricing"),
            dispatch=hall.url("dispatch"),
            matcher=hall.url("matcher"),
        )
        seen = Seen()
        topics = TopicWatcher(broker.bootstrap, seen)
        topics.start()
        cleanup.append(topics.stop)
        board = BoardWatcher(hall.ports.pricing, seen)
        board.start()
        cleanup.append(board.stop)
        poller = SuggestionPoller(urls.dispatch, seen)
        poller.start()
        cleanup.append(poller.stop)
        offsets = TopicOffsets(broker.bootstrap)
        cleanup.append(offsets.close)
        run = Run(urls, stations, seen, grade, offsets, CpuMeter(broker, hall), args.drain_s)
        cleanup.append(run.close)
        if not board.ready.wait(30):
            raise BenchError(f"the board stream gave no ready within 30s: {board.errors[:3]}")
        run.check_in_trucks()
        warm = run.warm_up(args.warm_up_s)
        document["warm_up"] = warm
        progress(f"warm-up lot traded and on a truck suggestion in {warm['seconds']}s")

        steps: list[Step] = []

        def step_at(rate: float) -> Step:
            progress(f"step at {rate:g} lots/s for {args.seconds:g}s")
            step = run.step(f"{rate:g}/s", rate, args.seconds)
            steps.append(step)
            progress(
                f"  {'held' if step.held else 'not held'}: {step.weighed} weighed, "
                f"{step.traded} traded, drain {step.drain_s}s"
                + ("" if step.held else f" ({'; '.join(step.reasons)})")
            )
            return step

        for rate in rates(args.min_rate, args.max_rate):
            if not step_at(rate).held:
                break
        for _ in range(args.refine):
            held = [s.rate for s in steps if s.held]
            failed = [s.rate for s in steps if not s.held]
            if not held or not failed:
                break
            low, high = max(held), min(failed)
            middle = round((low + high) / 2, 2)
            if not low < middle < high:
                break
            step_at(middle)
        sustained = max((s.rate for s in steps if s.held), default=0.0)
        document["steps"] = [s.row() for s in steps]
        document["sustained_lots_per_s"] = sustained
        latency: dict[str, Step] = {}
        if sustained:
            for name, share in (("50%", 0.5), ("100%", 1.0)):
                rate = round(sustained * share, 3)
                progress(
                    f"latency at {name} of {sustained:g}: {rate:g} lots/s for {args.seconds:g}s"
                )
                sampler = None
                if args.profile is not None and name == "100%":
                    sampler = sampling.Sampler(args.profile, args.seconds)
                    sampler.start(hall.pids())
                latency[name] = run.step(f"lat{name}", rate, args.seconds)
                if sampler is not None:
                    document["profile"] = sampler.finish()
        document["latency"] = {
            name: {
                "rate": s.rate,
                "lots": s.lots,
                "traded": s.traded,
                "held": s.held,
                "records_per_s": s.records_per_s,
                "records_per_lot": s.records_per_lot,
                "effects_ms": s.latency_ms,
                "cpu_share": s.cpu_share,
                "reasons": s.reasons,
            }
            for name, s in latency.items()
        }
        full = latency.get("100%")
        document["pipeline"] = {
            "lots_per_s": sustained,
            "records_per_s": full.records_per_s if full else 0.0,
            "records_per_lot": full.records_per_lot if full else 0.0,
            "trade_rate": full.trade_rate if full else 0.0,
        }
        document["limit"] = limit_text(steps, sustained, args.max_rate, os.cpu_count() or 1)
        if full is not None and not full.held:
            document["limit"] += (
                f"; the latency run at {full.rate:g} lots/s did not hold again: "
                + "; ".join(full.reasons)
            )
        document["watchers"] = {
            "board_connects": board.connects,
            "board_errors": board.errors[:5],
            "suggestion_polls": poller.polls,
            "suggestion_answer_ms": summary_ms(poller.answer_s),
            "suggestion_errors": poller.errors[:5],
            "consumer_errors": topics.errors[:5],
        }
        print_report(document, steps, latency)
    finally:
        for stop in reversed(cleanup):
            with contextlib.suppress(Exception):
                stop()
        if hall is not None:
            progress("stopping the hall")
            hall.stop()
        progress("stopping the broker")
        broker.stop()


def print_report(document: dict[str, Any], steps: list[Step], latency: dict[str, Step]) -> None:
    machine, settings = document["machine"], document["settings"]
    print(
        f"Melon Hall pipeline, Kafka {machine['kafka']}, Python {machine['python']} on "
        f"{machine['cpus']} CPUs (load {machine['load_average_at_start'][0]}); "
        f"{settings['stations']} stations settling {settings['settle_s']:g}s, stable after "
        f"{settings['window_ms']} ms, lots of "
        f"{document['warm_up']['net_kg']} kg net, one bid per lot"
    )
    print(step_table(steps))
    print(f"sustained: {document['sustained_lots_per_s']:g} lots/s")
    print(f"limit: {document['limit']}")
    if latency:
        print(latency_table(latency))
        pipeline = document["pipeline"]
        print(
            f"at 100 %: {pipeline['records_per_s']:.1f} records/s on the hall's topics "
            f"(scale readings aside), {pipeline['records_per_lot']:.1f} records a lot"
        )
    if "profile" in document:
        full = document["latency"].get("100%", {})
        print(
            "where the CPU went at 100 % (py-spy samples holding the GIL, each charged to the "
            "deepest own function on its stack)"
        )
        print(sampling.report(document["profile"], full.get("cpu_share", {})))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each step")
    parser.add_argument("--min-rate", type=float, default=0.5, help="first step, lots/s")
    parser.add_argument("--max-rate", type=float, default=8.0, help="last step, lots/s")
    parser.add_argument(
        "--refine",
        type=int,
        default=1,
        help="steps halfway between the highest rate held and the lowest not held",
    )
    parser.add_argument("--stations", type=int, default=12, help="simulated platform scales")
    parser.add_argument(
        "--settle-s", type=float, default=1.0, help="a scale's settling time after a load change"
    )
    parser.add_argument(
        "--window-ms",
        type=int,
        default=IngestStationSetting.model_fields["window_ms"].default,
        help="how long ingest wants a load still before it is stable (the stations' legal window)",
    )
    parser.add_argument(
        "--drain-s", type=float, default=30.0, help="longest wait for a step's lots to trade"
    )
    parser.add_argument(
        "--warm-up-s", type=float, default=90.0, help="longest wait for the first lot's truck"
    )
    parser.add_argument(
        "--baselines",
        type=Path,
        default=ROOT / "var" / "bench" / "baselines.json",
        help="bench_baselines.py's JSON, for the pipeline/client ratio",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    parser.add_argument("--keep", type=Path, help="keep the broker and the services' logs here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record every service with py-spy during the run at 100 %% into this folder",
    )
    args = parser.parse_args(argv)
    if not 0 < args.min_rate <= args.max_rate <= 100:
        parser.error("need 0 < --min-rate <= --max-rate <= 100")
    if not 1 <= args.stations <= MAX_STATIONS:
        parser.error(f"--stations must be 1 to {MAX_STATIONS}")
    if not 0.5 <= args.seconds <= 600:
        parser.error("--seconds must be 0.5 to 600")
    if not 100 <= args.window_ms <= 30_000:
        parser.error("--window-ms must be 100 to 30000")
    if not 0 <= args.settle_s <= 10:
        parser.error("--settle-s must be 0 to 10")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    document: dict[str, Any] = {
        "bench": "pipeline",
        "machine": common.machine(
            kafka=kafka_version(), load_average_at_start=common.load_average()
        ),
        "settings": {
            "seconds": args.seconds,
            "rates": rates(args.min_rate, args.max_rate),
            "stations": args.stations,
            "settle_s": args.settle_s,
            "window_ms": args.window_ms,
            "drain_s": args.drain_s,
            "gross_kg": GROSS_KG,
            "crates": CRATES,
            "varieties": sorted(VARIETIES),
            "grade": expected_grade().value,
            "book": [book_key(v, expected_grade()) for v in sorted(VARIETIES)],
            "bid_price_yuan_per_kg": PRICE_YUAN,
            "merchants": [m.account_id for m in merchants()],
            "scale_view": "GET /stations/{id}/scale/stream, one per station as each console",
            "suggestion_poll_s": SUGGESTION_POLL_S,
        },
    }
    with common.workdir(args.keep, "melon-bench-pipeline-") as home:
        try:
            measure(args, home, document)
        except (BenchError, BrokerError, HallError) as exc:
            progress(f"failed: {exc}")
            return 1
    document["run_s"] = round(time.monotonic() - BEGAN, 1)
    ratio = baseline_ratio(args.baselines, document["pipeline"]["records_per_s"])
    if ratio is not None:
        document["ratios"] = ratio
        print(
            f"pipeline / client loop: {ratio['pipeline_records_per_s']:.1f} / "
            f"{ratio['client_loop_records_per_s']:,.0f} records/s = "
            f"{ratio['pipeline_over_client_loop']:.5f} (baselines written "
            f"{ratio['baselines_age_s']}s ago)"
        )
    print(f"run took {document['run_s']:.0f}s")
    if args.json is not None:
        common.write_json(args.json, document, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
