"""What Kafka on this machine carries: the ceilings the hall's own pipeline is held against.

    python bench/bench_baselines.py [--bootstrap HOST:PORT] [--records 50000] [--seconds 10]
        [--json out.json]

Without ``--bootstrap`` the run starts a broker of its own (a temporary folder, free ports on
127.0.0.1) and stops it at the end; with it, the run deletes the topics and groups it made.

Record size: the events the hall moves most are built with realistic values through the contracts
and the domain code (a ``LotGraded`` from a graded sample, a ``PlaceBid`` as the API makes it, the
``TradeExecuted`` and ``BoardUpdated`` its book gives) and their JSON sizes reported with their
median. The baselines move ``PlaceBid`` commands, what merchants send most, not the median: the
client and faust baselines move real ``PlaceBid`` JSON keyed by book (about 400 bytes, a few more
or less with the book's name), the broker's tools records of their mean size. Topics have 6
partitions, as the book topics. Producers use ``KafkaPublisher``'s settings: acks=all,
idempotent, linger 2 ms.

- ``broker``: Kafka's own ``ProducerPerformance`` from the broker's jars (random payloads without
  keys; the first fifth of the records warm the JVM up and stay out of its figures) and
  ``ConsumerPerformance`` reading them back (its fetch rate, without the group join);
- ``client``: kafka-python in this process: produce only (which fills the input topic), consume
  only, and a consume-transform-produce ``loop``: decode the JSON, raise the price a fen, encode,
  send without waiting; every second flush and commit the offsets; timed from the first record
  consumed to the last one acknowledged. kafka-python is used with its defaults, as the hall's
  readers use it: without the ``crc32c`` module it checks each batch's CRC in pure Python;
- ``faust``: the same transform in a faust-streaming agent (``baseline_faust_app.py``, configured
  as the pricing worker) in a worker process of its own, reading the same input topic; timed from
  the first to the last record a kafka-python consumer here sees on its output topic.

MB/s counts values only, in MiB as Kafka's tools do. ``--seconds`` bounds each timed stage: one
that runs longer stops and reports the rate of what it did, marked capped. Ratios: client loop
over the broker's producer, faust over the client loop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import common
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationFactorError, KafkaError

from ingest.domain.grading import DEFAULT_PROFILE_ID, PROFILES_DIR, Sample, load_profile
from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import OfferLot, PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import BOOK_COMMANDS
from melon_devkit.kafka import Broker, BrokerError, fetch_jars, kafka_version
from pricing.adapters.translate import board_event, trade_events
from pricing.domain.board import HALL_TIME
from pricing.domain.book import Book
from pricing.domain.market import apply
from pricing.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = BOOK_COMMANDS.partitions
MIB = 1024 * 1024
WARM_UP_SHARE = 5
"""One record in this many warms the JVM producer up, outside its figures."""
COMMIT_EVERY_S = 1.0
WORKER_START_S = 60.0
"""How long the faust worker may take to pass its first record on."""
NOW = datetime(2025, 8, 1, 9, 30, tzinfo=HALL_TIME)
BOOKS = [book_key(variety, grade) for variety in sorted(VARIETIES) for grade in Grade]
BASE_PRICE = 400
PRICES = 300
"""Record ``serial`` bids ``BASE_PRICE + serial % PRICES`` fen/kg, so its transform is checkable."""
BEGAN = time.monotonic()
TOOLS_LOG4J = """\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""


class BenchError(RuntimeError):
    """A baseline did not run to its end."""


def progress(message: str) -> None:
    print(f"[{time.monotonic() - BEGAN:5.1f}s] {message}", flush=True)


def transform(value: bytes) -> bytes:
    """What each loop does to a record: decode the JSON, raise the price a fen, encode."""
    record = json.loads(value)
    record["price_fen_per_kg"] += 1
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def place_bid(serial: int, variety: str = "xizhoumi", grade: Grade = Grade.CLASS_I) -> PlaceBid:
    """A merchant's bid as the API makes it: its id is ``B-`` and 12 hex digits."""
    bid_id = f"B-{serial:012x}"
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        occurred_at=NOW,
        merchant_id="merchant-lanzhou",
        variety=variety,
        grade=grade,
        price_fen_per_kg=BASE_PRICE + serial % PRICES,
        quantity_g=600_000,
        destination="兰州",
        cold_chain=True,
        expires_at=NOW.replace(hour=23, minute=59, second=59),
    )


def sample_events() -> dict[str, Message]:
    """A graded lot, a bid, and the trade and board line the lot makes against four bids."""
    profile = load_profile(PROFILES_DIR / f"{DEFAULT_PROFILE_ID}.yaml")
    grading = profile.grade(
        Sample(
            brix=(14.2, 14.8, 15.1, 14.6, 14.4, 15.0, 13.8, 14.9, 14.3, 14.7),
            fruit_weights_g=(2450, 2300, 2600, 2380, 2520, 2410, 2290, 2550, 2470, 2350),
            defects={"scar": 1},
        )
    )
    graded = LotGraded(
        correlation_id="MQ-0001",
        occurred_at=NOW,
        lot_id="MQ-0001",
        station_id="ws-1",
        ticket_no=1042,
        farmer_id="farmer-zhang-san",
        variety="xizhoumi",
        crates=40,
        net_g=452_400,
        **asdict(grading),
    )
    reserve = Settings().reserve_fen_per_kg[graded.grade]
    book: Book | None = None
    for serial, above in enumerate((130, 110, 100, 70), start=1):
        bid = place_bid(serial, graded.variety, graded.grade).model_copy(
            update={
                "price_fen_per_kg": reserve + above,
                "occurred_at": NOW - timedelta(minutes=serial),
            }
        )
        book = apply(book, bid).book
    lot = OfferLot(
        correlation_id=graded.lot_id,
        occurred_at=NOW,
        lot_id=graded.lot_id,
        farmer_id=graded.farmer_id,
        variety=graded.variety,
        grade=graded.grade,
        crates=graded.crates,
        net_g=graded.net_g,
        reserve_fen_per_kg=reserve,
    )
    outcome = apply(book, lot)
    if not outcome.fills:
        raise BenchError("the sample lot made no trade; the sample events are wrong")
    return {
        "LotGraded": graded,
        "PlaceBid": place_bid(0),
        "TradeExecuted": trade_events(outcome.fills)[0],
        "BoardUpdated": board_event(outcome.board, lot.correlation_id),
    }


def bid_records(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` bids as (key, value): distinct ids, spread over every book."""
    records = []
    for serial in range(count):
        key = BOOKS[serial % len(BOOKS)]
        variety, grade = key.split(".")
        records.append((encode_key(key), encode(place_bid(serial, variety, Grade(grade)))))
    return records


def check_transformed(values: list[bytes]) -> int:
    """Raise unless every value is a distinct bid a fen dearer than it was sent; returns how many
    were repeats (at-least-once delivery may repeat a record)."""
    seen = set()
    for value in values:
        record = json.loads(value)
        serial = int(record["bid_id"][2:], 16)
        if record["price_fen_per_kg"] != BASE_PRICE + serial % PRICES + 1:
            raise BenchError(f"{record['bid_id']} came out untransformed: {value[:120]!r}")
        seen.add(serial)
    return len(values) - len(seen)


@dataclass
class Stage:
    baseline: str
    stage: str
    records: int
    seconds: float
    record_bytes: int
    capped: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.records_per_s * self.record_bytes / MIB

    def figures(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "records_per_s": round(self.records_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
            "capped": self.capped,
            **self.details,
        }


PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) (?P<steady>steady state )?records sent, (?P<rate>[\d.]+) records/sec "
    r"\((?P<mb>[\d.]+) MB/sec\), (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)


def parse_producer(output: str, record_bytes: int) -> Stage:
    """ProducerPerformance's summary: the steady-state line when it printed one, else the run's."""
    found = {bool(m["steady"]): m for m in PRODUCER_SUMMARY.finditer(output)}
    if not found:
        raise BenchError(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    summary = found.get(True, found.get(False))
    assert summary is not None
    rate = float(summary["rate"])
    records = int(summary["records"])
    details: dict[str, Any] = {
        "latency_ms": {
            "avg": float(summary["avg"]),
            "p50": float(summary["p50"]),
            "p95": float(summary["p95"]),
            "p99": float(summary["p99"]),
            "p99_9": float(summary["p999"]),
            "max": float(summary["max"]),
        },
        "tool_mb_per_s": float(summary["mb"]),
        "steady_state": True in found,
    }
    if False in found and True in found:
        details["whole_run_records_per_s"] = float(found[False]["rate"])
    return Stage("broker", "produce", records, records / rate, record_bytes, details=details)


def parse_consumer(output: str, record_bytes: int) -> Stage:
    """ConsumerPerformance's CSV line; the rate is the fetch rate, without joining the group."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise BenchError(f"ConsumerPerformance printed no figures:\n{output[-2000:]}")
    names = [name.strip() for name in lines[header].split(",")]
    values = [value.strip() for value in lines[header + 1].split(",")]
    row = dict(zip(names, values, strict=True))
    records = int(row["data.consumed.in.nMsg"])
    fetch_s = float(row["fetch.time.ms"]) / 1000
    details = {
        "tool_mb_per_s": float(row["fetch.MB.sec"]),
        "with_group_join_records_per_s": float(row["nMsg.sec"]),
        "group_join_ms": float(row["rebalance.time.ms"]),
    }
    return Stage("broker", "consume", records, fetch_s, record_bytes, details=details)


def java(libs: Path, log_config: Path, main: str, *args: str) -> list[str]:
    """A Kafka tool's command line, run on the broker's jars as ``Broker`` runs the broker."""
    home = os.environ.get("JAVA_HOME")
    binary = str(Path(home) / "bin" / "java") if home else "java"
    return [
        binary,
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def run_tool(command: list[str], timeout_s: float) -> str:
    progress(f"$ {' '.join(command[command.index('-cp') + 2 :])}")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{command[command.index('-cp') + 2]} took over {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command[-12:])} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


@dataclass
class Tools:
    libs: Path
    log_config: Path
    bootstrap: str
    timeout_s: float

    def produce(self, topic: str, records: int, record_bytes: int) -> Stage:
        output = run_tool(
            java(
                self.libs,
                self.log_config,
                "org.apache.kafka.tools.ProducerPerformance",
                "--topic",
                topic,
                "--num-records",
                str(records),
                "--record-size",
                str(record_bytes),
                "--throughput",
                "-1",
                "--warmup-records",
                str(records // WARM_UP_SHARE),
                "--command-property",
                f"bootstrap.servers={self.bootstrap}",
                "acks=all",
                "enable.idempotence=true",
                "linger.ms=2",
            ),
            self.timeout_s,
        )
        return parse_producer(output, record_bytes)

    def consume(self, topic: str, records: int, record_bytes: int, group: str) -> Stage:
        output = run_tool(
            java(
                self.libs,
                self.log_config,
                "org.apache.kafka.tools.ConsumerPerformance",
                "--bootstrap-server",
                self.bootstrap,
                "--topic",
                topic,
                "--group",
                group,
                "--num-records",
                str(records),
            ),
            self.timeout_s,
        )
        stage = parse_consumer(output, record_bytes)
        if stage.records < records:
            raise BenchError(f"ConsumerPerformance read {stage.records} of {records} records")
        return stage


def publisher_producer(bootstrap: str, client_id: str) -> KafkaProducer:
    """A producer with ``KafkaPublisher``'s settings."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        retries=2_147_483_647,
        request_timeout_ms=10_000,
        delivery_timeout_ms=15_000,
    )


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-baseline-offsets")
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return int(sum(ends.values()))
    finally:
        consumer.close()


def client_produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], size: int, limit_s: float
) -> Stage:
    producer = publisher_producer(bootstrap, "bench-baseline-produce")
    sent, capped = 0, False
    try:
        began = time.perf_counter()
        for key, value in records:
            producer.send(topic, key=key, value=value)
            sent += 1
            if sent % 1000 == 0 and time.perf_counter() - began > limit_s:
                capped = True
                break
        producer.flush()
        seconds = time.perf_counter() - began
    finally:
        producer.close(timeout=5)
    landed = end_offsets(bootstrap, topic)
    if landed != sent:
        raise BenchError(f"produced {sent} records to {topic}, the broker holds {landed}")
    return Stage("client", "produce", sent, seconds, size, capped)


def assigned_from_start(bootstrap: str, topic: str, client_id: str, **options: Any) -> Any:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False, **options
    )
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    return consumer


def client_consume(bootstrap: str, topic: str, records: int, size: int, limit_s: float) -> Stage:
    consumer = assigned_from_start(bootstrap, topic, "bench-baseline-consume")
    got, capped = 0, False
    first = last = 0.0
    deadline = time.monotonic() + limit_s + 10
    try:
        while got < records:
            batches = consumer.poll(timeout_ms=200)
            now = time.perf_counter()
            for batch in batches.values():
                got += len(batch)
            if batches:
                first, last = first or now, now
            if got and now - first > limit_s:
                capped = True
                break
            if time.monotonic() > deadline:
                raise BenchError(f"consumed {got} of {records} records of {topic}")
    finally:
        consumer.close()
    return Stage("client", "consume", got, last - first, size, capped)


def client_loop(
    bootstrap: str, source: str, sink: str, records: int, size: int, group: str, limit_s: float
) -> Stage:
    """Consume, transform and produce in one thread; flush and commit every second.

    A consumer that never gets its partitions (a group join that stalls, seen once in many runs
    on a loaded machine) is replaced by a fresh one before the loop gives up; nothing was passed
    on or committed by then, so the new one starts from the beginning.
    """
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            return _client_loop(bootstrap, source, sink, records, size, group, limit_s)
        except NeverJoined:
            progress(f"client loop: no partitions after {JOIN_WAIT_S:.0f}s (try {attempt})")
    raise BenchError(f"the loop's consumer never got its partitions in {JOIN_ATTEMPTS} tries")


class NeverJoined(Exception):
    """The loop's consumer got no records in its join window."""


JOIN_ATTEMPTS = 3
JOIN_WAIT_S = 30.0


def _client_loop(
    bootstrap: str, source: str, sink: str, records: int, size: int, group: str, limit_s: float
) -> Stage:
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        client_id="bench-baseline-loop",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = publisher_producer(bootstrap, "bench-baseline-loop")
    done, capped, commits = 0, False, 0
    first = last_commit = 0.0
    joined_by = time.monotonic() + JOIN_WAIT_S
    deadline = joined_by + limit_s
    try:
        while done < records:
            batches = consumer.poll(timeout_ms=200)
            now = time.perf_counter()
            for batch in batches.values():
                for record in batch:
                    producer.send(sink, key=record.key, value=transform(record.value))
                done += len(batch)
            if batches and not first:
                first = last_commit = now
            if first and now - last_commit >= COMMIT_EVERY_S:
                producer.flush()
                consumer.commit()
                commits += 1
                last_commit = time.perf_counter()
            if first and now - first > limit_s:
                capped = True
                break
            if not first and time.monotonic() > joined_by:
                raise NeverJoined
            if time.monotonic() > deadline:
                raise BenchError(f"the loop passed {done} of {records} records on")
        producer.flush()
        seconds = time.perf_counter() - first
        consumer.commit()
    finally:
        producer.close(timeout=5)
        consumer.close()
    landed = end_offsets(bootstrap, sink)
    if landed != done:
        raise BenchError(f"the loop passed {done} records on, {sink} holds {landed}")
    return Stage("client", "loop", done, seconds, size, capped, {"commits": commits + 1})


@dataclass
class FaustWorker:
    """``python -m faust -A bench.baseline_faust_app worker`` in a process group of its own."""

    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The app imports this file as bench.bench_baselines, which imports its sibling common.
        folders = [str(ROOT), str(ROOT / "bench"), os.environ.get("PYTHONPATH")]
        path = os.pathsep.join(filter(None, folders))
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faust",
                    "-A",
                    "bench.baseline_faust_app",
                    "worker",
                    "--without-web",
                    "--loglevel",
                    "warn",
                ],
                env={**os.environ, **self.env, "PYTHONPATH": path},
                cwd=self.log_file.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise BenchError(f"the faust worker exited with {self.process.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def faust_loop(
    bootstrap: str,
    source: str,
    sink: str,
    records: int,
    size: int,
    app_id: str,
    home: Path,
    limit_s: float,
) -> Stage:
    """Start the worker on the filled input topic; time the output topic from its first record."""
    home.mkdir(parents=True, exist_ok=True)
    worker = FaustWorker(
        {
            "BENCH_BASELINE_BOOTSTRAP": bootstrap,
            "BENCH_BASELINE_APP_ID": app_id,
            "BENCH_BASELINE_SOURCE": source,
            "BENCH_BASELINE_SINK": sink,
            "BENCH_BASELINE_DATA_DIR": str(home / "data"),
            "BENCH_BASELINE_PARTITIONS": str(PARTITIONS),
        },
        home / "worker.log",
    )
    # check_crcs off: the watcher should take as little of the two cores from the worker as it can
    watcher = assigned_from_start(
        bootstrap, sink, "bench-baseline-faust-out", check_crcs=False, fetch_max_wait_ms=50
    )
    values: list[bytes] = []
    capped = False
    first = last = 0.0
    try:
        started = time.perf_counter()
        worker.start()
        while len(values) < records:
            worker.check_alive()
            batches = watcher.poll(timeout_ms=100)
            now = time.perf_counter()
            for batch in batches.values():
                values += [record.value for record in batch]
            if batches:
                first, last = first or now, now
            if not first and now - started > WORKER_START_S:
                raise BenchError(f"the faust worker passed nothing on within {WORKER_START_S}s")
            if first and now - first > limit_s:
                capped = True
                break
    finally:
        watcher.close()
        worker.stop()
    repeats = check_transformed(values)
    details = {"worker_start_s": round(first - started, 3), "repeats": repeats}
    return Stage("faust", "loop", len(values), last - first, size, capped, details)


@dataclass
class Topics:
    run_id: str

    @property
    def perf(self) -> str:
        return f"bench.baseline.{self.run_id}.perf"

    @property
    def source(self) -> str:
        return f"bench.baseline.{self.run_id}.in"

    @property
    def client_out(self) -> str:
        return f"bench.baseline.{self.run_id}.client.out"

    @property
    def faust_out(self) -> str:
        return f"bench.baseline.{self.run_id}.faust.out"

    @property
    def faust_app(self) -> str:
        return f"bench-baseline-{self.run_id}-faust"

    @property
    def groups(self) -> list[str]:
        return [f"bench.baseline.{self.run_id}.perf", f"bench.baseline.{self.run_id}.client"]

    def ours(self) -> list[str]:
        return [self.perf, self.source, self.client_out, self.faust_out]

    def faust_internal(self) -> list[str]:
        return [f"{self.faust_app}-__assignor-__leader"]


def create_topics(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    """Create the run's topics; a broker just started is fenced for a moment, so retry then."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-baseline")
    deadline = time.monotonic() + timeout_s
    try:
        for name in names:
            while True:
                try:
                    admin.create_topics([NewTopic(name, PARTITIONS, 1)])
                    break
                except InvalidReplicationFactorError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
    finally:
        admin.close()


def delete_what_we_made(bootstrap: str, topics: Topics) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-baseline")
    try:
        existing = set(admin.list_topics())
        made = [name for name in topics.ours() + topics.faust_internal() if name in existing]
        with contextlib.suppress(KafkaError):
            admin.delete_topics(made)
        with contextlib.suppress(KafkaError):
            admin.delete_groups([*topics.groups, topics.faust_app])
    finally:
        admin.close()


@contextlib.contextmanager
def own_broker(home: Path) -> Iterator[Broker]:
    broker, took = common.start_broker(home)
    progress(f"broker {broker.bootstrap} (Kafka {kafka_version()}) up in {took:.1f}s")
    try:
        yield broker
    finally:
        broker.stop()


def ratio(over: Stage, under: Stage) -> float:
    return round(over.records_per_s / under.records_per_s, 3) if under.records_per_s else 0.0


def ratios(stages: dict[tuple[str, str], Stage]) -> dict[str, float]:
    return {
        "client_loop_over_broker_produce": ratio(
            stages["client", "loop"], stages["broker", "produce"]
        ),
        "client_produce_over_broker_produce": ratio(
            stages["client", "produce"], stages["broker", "produce"]
        ),
        "client_consume_over_broker_consume": ratio(
            stages["client", "consume"], stages["broker", "consume"]
        ),
        "faust_loop_over_client_loop": ratio(stages["faust", "loop"], stages["client", "loop"]),
    }


def run(bootstrap: str, records: int, limit_s: float, home: Path, topics: Topics) -> list[Stage]:
    create_topics(bootstrap, topics.ours())
    inputs = bid_records(records)
    record_bytes = round(statistics.fmean(len(value) for _, value in inputs))
    tools = Tools(fetch_jars(quiet=True), home / "tools-log4j2.properties", bootstrap, 60 + limit_s)
    tools.log_config.write_text(TOOLS_LOG4J, encoding="utf-8")
    stages: list[Stage] = []

    def done(stage: Stage) -> Stage:
        stages.append(stage)
        capped = " (capped)" if stage.capped else ""
        progress(
            f"{stage.baseline} {stage.stage}: {stage.records:,} records, "
            f"{stage.records_per_s:,.0f} records/s{capped}"
        )
        return stage

    done(tools.produce(topics.perf, records, record_bytes))
    done(tools.consume(topics.perf, records, record_bytes, topics.groups[0]))
    source = topics.source
    count = done(client_produce(bootstrap, source, inputs, record_bytes, limit_s)).records
    done(client_consume(bootstrap, source, count, record_bytes, limit_s))
    loop_group = topics.groups[1]
    done(
        client_loop(bootstrap, source, topics.client_out, count, record_bytes, loop_group, limit_s)
    )
    progress("faust: starting a worker that passes the same records on")
    faust_home = home / "faust"
    done(
        faust_loop(
            bootstrap,
            source,
            topics.faust_out,
            count,
            record_bytes,
            topics.faust_app,
            faust_home,
            limit_s,
        )
    )
    return stages


def table(stages: list[Stage]) -> str:
    lines = [
        f"{'baseline':<8} {'stage':<8} {'records':>9} {'seconds':>8} {'records/s':>11} "
        f"{'MB/s':>7}  note"
    ]
    for stage in stages:
        note = "capped" if stage.capped else ""
        if "worker_start_s" in stage.details:
            note += f" worker passed its first record on after {stage.details['worker_start_s']}s"
        lines.append(
            f"{stage.baseline:<8} {stage.stage:<8} {stage.records:>9,} {stage.seconds:>8.2f} "
            f"{stage.records_per_s:>11,.0f} {stage.mb_per_s:>7.2f}  {note.strip()}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="a running broker (host:port); default: start one")
    parser.add_argument("--records", type=int, default=50_000, help="records each baseline moves")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="the most one timed stage may take"
    )
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    args = parser.parse_args(argv)
    if args.records < 100:
        parser.error("--records must be at least 100")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    sizes = {name: len(encode(event)) for name, event in sample_events().items()}
    median = statistics.median(sizes.values())
    topics = Topics(uuid.uuid4().hex[:8])
    with common.workdir(None, "melon-bench-baselines-") as home:
        try:
            if args.bootstrap:
                try:
                    stages = run(args.bootstrap, args.records, args.seconds, home, topics)
                finally:
                    delete_what_we_made(args.bootstrap, topics)
            else:
                with own_broker(home) as broker:
                    stages = run(broker.bootstrap, args.records, args.seconds, home, topics)
        except (BenchError, BrokerError, KafkaError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    by_stage = {(stage.baseline, stage.stage): stage for stage in stages}
    record_bytes = stages[0].record_bytes
    figures = ratios(by_stage)
    machine = common.machine(
        kafka=kafka_version(),
        broker=args.bootstrap or "own (a temporary single-node KRaft broker)",
        kafka_python=version("kafka-python"),
        faust_streaming=version("faust-streaming"),
        aiokafka=version("aiokafka"),
    )
    print(
        f"Melon Hall Kafka baselines, Kafka {machine['kafka']}, Python {machine['python']} on "
        f"{machine['cpus']} CPUs; {args.records:,} records a baseline, "
        f"run took {time.monotonic() - BEGAN:.0f}s"
    )
    print(
        "record sizes (JSON bytes): "
        + ", ".join(f"{name} {size}" for name, size in sizes.items())
        + f"; median {median:g}. The baselines move PlaceBid records, {record_bytes} bytes on "
        "average"
    )
    print(table(stages))
    latency = by_stage["broker", "produce"].details["latency_ms"]
    print(
        "broker producer latency (ms): "
        + ", ".join(f"{name} {value:g}" for name, value in latency.items())
    )
    print("ratios: " + ", ".join(f"{name} {value:.3f}" for name, value in figures.items()))
    if args.json is not None:
        baselines: dict[str, dict[str, Any]] = {}
        for stage in stages:
            baselines.setdefault(stage.baseline, {})[stage.stage] = stage.figures()
        document = {
            "machine": machine,
            "settings": {
                "records": args.records,
                "seconds": args.seconds,
                "partitions": PARTITIONS,
                "record": "PlaceBid",
                "record_bytes": record_bytes,
                "producer": {"acks": "all", "enable_idempotence": True, "linger_ms": 2},
            },
            "record_sizes": {**sizes, "median": median},
            "baselines": baselines,
            "ratios": figures,
        }
        common.write_json(args.json, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
