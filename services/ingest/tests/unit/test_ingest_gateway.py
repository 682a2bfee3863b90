"""The scale gateway against simulated indicators on 127.0.0.1, with an in-memory sink."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from ingest.domain.frames import encode_xk3190, printable
from ingest.gateway import (
    Backoff,
    Gateway,
    GatewayMetrics,
    GatewaySettings,
    MemorySink,
    ScaleConfig,
)
from ingest.gateway import sinks as sinks_module
from melon_contracts.codec import decode
from melon_contracts.events import ScaleReading
from melon_contracts.topics import SCALE_READINGS
from melon_devkit.scalesim import ScaleSimulator, StationSpec

T = TypeVar("T")
FAST = Backoff(first_s=0.05, max_s=0.2)


def eventually(probe: Callable[[], T], timeout_s: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")
        time.sleep(0.02)
        last = probe()
    return last


class Running:
    """A gateway serving in a thread of its own until the block ends."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.gateway.run())
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Gateway:
        self._thread.start()
        return self.gateway

    def __exit__(self, *_: object) -> None:
        self.gateway.stop()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the gateway did not stop"
        assert self.error is None, self.error


SPECS = (
    StationSpec("ws-1", 0, "mt-sics", capacity_g=100_000, settle_s=0.4),
    StationSpec("ws-2", 0, "xk3190", capacity_g=100_000, settle_s=0.4),
)


@pytest.fixture
def sim() -> Iterator[ScaleSimulator]:
    with ScaleSimulator(SPECS, control_port=None, rate_hz=50, seed=3) as simulator:
        yield simulator


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics(CollectorRegistry())


def scales_of(sim: ScaleSimulator) -> list[ScaleConfig]:
    return [
        ScaleConfig.model_validate(
            {"station": station, "port": scale.port, "protocol": scale.spec.protocol}
        )
        for station, scale in sim.scales.items()
    ]


def gateway_for(
    sim: ScaleSimulator, sink: MemorySink, metrics: GatewayMetrics, **options: Any
) -> Gateway:
    return Gateway(scales_of(sim), sink, metrics, backoff=FAST, **options)


def test_readings_arrive_numbered_per_station(sim: ScaleSimulator, metrics: GatewayMetrics) -> None:
    sink = MemorySink()
    with Running(gateway_for(sim, sink, metrics, session="s1")):
        eventually(lambda: len(sink.of("ws-1")) >= 5 and len(sink.of("ws-2")) >= 5)
    for station, protocol in (("ws-1", "mt-sics"), ("ws-2", "xk3190")):
        readings = sink.of(station)
        assert [r.reading_id for r in readings] == [
            f"{station}:s1:{seq}" for seq in range(1, len(readings) + 1)
        ]
        assert {(r.station_id, r.correlation_id, r.protocol) for r in readings} == {
            (station, station, protocol)
        }
        assert metrics.value("readings_total", station=station) == len(readings)
    assert sink.of("ws-1")[0].raw == "S S       0.00 kg"
    assert sink.of("ws-2")[0].raw == printable(encode_xk3190(0, 2))


def test_each_gateway_start_draws_a_new_session() -> None:
    sink = MemorySink()
    first, second = (Gateway([], sink, GatewayMetrics(CollectorRegistry())) for _ in range(2))
    assert re.fullmatch(r"[0-9a-f]{8}", first.session)
    assert first.session != second.session


@pytest.mark.parametrize("station", ["ws-1", "ws-2"], ids=["mt-sics", "xk3190"])
def test_a_load_settles_to_its_weight_in_grams(
    sim: ScaleSimulator, metrics: GatewayMetrics, station: str
) -> None:
    sink = MemorySink()
    with Running(gateway_for(sim, sink, metrics)):
        eventually(lambda: sink.of(station))
        sim.load(station, "41.24")
        eventually(lambda: {r.value_g for r in sink.of(station)[-10:]} == {41_240})
    readings = sink.of(station)
    moving = [r for r in readings if r.value_g not in (0, 41_240)]
    assert moving, "the simulator should show motion between the old and the new load"
    assert readings[-1].value_g == 41_240
    if station == "ws-1":
        assert not any(r.indicator_stable for r in moving)
        assert readings[-1].indicator_stable
    else:
        assert not any(r.indicator_stable for r in readings)


@pytest.mark.parametrize("station", ["ws-1", "ws-2"], ids=["mt-sics", "xk3190"])
def test_malformed_frames_are_counted_and_the_gateway_keeps_going(
    sim: ScaleSimulator, metrics: GatewayMetrics, station: str
) -> None:
    sink = MemorySink()
    with Running(gateway_for(sim, sink, metrics)):
        eventually(lambda: sink.of(station))
        sim.garbage(station, 10)
        eventually(lambda: malformed(metrics, station) >= 10)
        before = len(sink.of(station))
        eventually(lambda: len(sink.of(station)) >= before + 5)
        assert metrics.value("connected", station=station) == 1
    assert malformed(metrics, station) == 10
    reasons = {
        sample.labels["reason"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "melon_gateway_malformed_frames_total"
    }
    assert len(reasons) == 5


def malformed(metrics: GatewayMetrics, station: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "melon_gateway_malformed_frames_total"
        and sample.labels["station"] == station
    )


def test_overload_and_underload_reach_the_sink_without_a_value(
    sim: ScaleSimulator, metrics: GatewayMetrics
) -> None:
    sink = MemorySink()
    with Running(gateway_for(sim, sink, metrics)):
        sim.load("ws-1", "150")
        over = eventually(lambda: [r for r in sink.of("ws-1") if r.overload])
        sim.unload("ws-1")
        sim.drift("ws-1", "-5")
        under = eventually(lambda: [r for r in sink.of("ws-1") if r.underload])
    assert (over[0].value_g, over[0].underload, over[0].raw) == (None, False, "S +")
    assert (under[0].value_g, under[0].overload, under[0].raw) == (None, False, "S -")


def test_the_gateway_reconnects_after_the_indicator_restarts(metrics: GatewayMetrics) -> None:
    spec = StationSpec("ws-1", 0, "mt-sics", settle_s=0.0)
    sink = MemorySink()
    first = ScaleSimulator([spec], control_port=None, rate_hz=50).start()
    port = first.ports["ws-1"]
    scales = [ScaleConfig(station="ws-1", port=port, protocol="mt-sics")]
    with Running(Gateway(scales, sink, metrics, backoff=FAST, session="r")):
        eventually(lambda: metrics.value("connected", station="ws-1") == 1 and sink.count >= 3)
        first.stop()
        eventually(lambda: metrics.value("connected", station="ws-1") == 0)
        relayed = sink.count
        with ScaleSimulator(
            [StationSpec("ws-1", port, "mt-sics", settle_s=0.0)], control_port=None
        ) as second:
            second.load("ws-1", "7.5")
            eventually(lambda: [r for r in sink.of("ws-1") if r.value_g == 7_500])
            assert metrics.value("connected", station="ws-1") == 1
    assert sink.count > relayed
    ids = [r.reading_id for r in sink.of("ws-1")]
    assert ids == [f"ws-1:r:{seq}" for seq in range(1, len(ids) + 1)]


def test_an_unreachable_indicator_does_not_hold_up_the_others(
    sim: ScaleSimulator, metrics: GatewayMetrics
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    scales = [*scales_of(sim), ScaleConfig(station="ws-9", port=closed_port, protocol="xk3190")]
    sink = MemorySink()
    with Running(Gateway(scales, sink, metrics, backoff=FAST)):
        eventually(lambda: len(sink.of("ws-1")) >= 5 and len(sink.of("ws-2")) >= 5)
        assert metrics.value("connected", station="ws-9") == 0
    assert not sink.of("ws-9")


class SilentIndicator:
    """A TCP server that accepts, records what it is sent, and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port: int = self.server.getsockname()[1]
        self.accepted = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                self.received += conn.recv(100)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.05)
            while not self._stop.is_set():
                try:
                    if not conn.recv(100):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.server.close()


@pytest.fixture
def silent() -> Iterator[SilentIndicator]:
    server = SilentIndicator()
    yield server
    server.close()


def test_the_gateway_asks_an_mtsics_indicator_for_continuous_weights(
    silent: SilentIndicator, metrics: GatewayMetrics
) -> None:
    scales = [ScaleConfig(station="ws-1", port=silent.port, protocol="mt-sics")]
    with Running(Gateway(scales, MemorySink(), metrics, backoff=FAST)):
        eventually(lambda: silent.received)
    assert silent.received == b"SIR\r\n"


def test_a_silent_connection_is_dropped_and_opened_again(
    silent: SilentIndicator, metrics: GatewayMetrics
) -> None:
    scales = [ScaleConfig(station="ws-2", port=silent.port, protocol="xk3190")]
    with Running(Gateway(scales, MemorySink(), metrics, backoff=FAST, idle_timeout_s=0.15)):
        eventually(lambda: silent.accepted >= 3)
    assert silent.received == b""


class RefusingSink(MemorySink):
    def send(self, reading: ScaleReading) -> None:
        if reading.reading_id.endswith(("1", "3")):
            raise RuntimeError("full")
        super().send(reading)


def test_a_sink_that_refuses_a_reading_is_counted_and_the_stream_goes_on(
    sim: ScaleSimulator, metrics: GatewayMetrics
) -> None:
    sink = RefusingSink()
    scales = scales_of(sim)[:1]
    with Running(Gateway(scales, sink, metrics, backoff=FAST)):
        eventually(lambda: sink.count >= 10)
    failures = metrics.value("publish_failures_total", station="ws-1")
    relayed = metrics.value("readings_total", station="ws-1")
    assert failures >= 2
    assert relayed == sink.count


def test_stop_before_run_returns_at_once(metrics: GatewayMetrics) -> None:
    scales = [ScaleConfig(station="ws-1", port=9, protocol="mt-sics")]
    gateway = Gateway(scales, MemorySink(), metrics)
    gateway.stop()
    running = threading.Thread(target=asyncio.run, args=(gateway.run(),), daemon=True)
    running.start()
    running.join(timeout=1.0)
    assert not running.is_alive()
    assert metrics.value("connected", station="ws-1") == 0


def test_backoff_doubles_from_a_fifth_of_a_second_to_five() -> None:
    delays = [Backoff().first_s]
    for _ in range(6):
        delays.append(Backoff().after(delays[-1]))
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


class FakeProducer:
    """Stands in for kafka-python's producer: records sends, lets the test settle each future."""

    created: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes, Future]] = []
        self.flushed = False
        self.closed = False
        FakeProducer.created.append(self)

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        future = Future()
        self.sent.append((topic, key, value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def reading(seq: int, station: str = "ws-1") -> ScaleReading:
    return ScaleReading(
        correlation_id=station,
        station_id=station,
        reading_id=f"{station}:t:{seq}",
        protocol="mt-sics",
        value_g=seq * 20,
        indicator_stable=True,
        raw="S S 0.02 kg",
    )


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    FakeProducer.created = []
    monkeypatch.setattr(sinks_module, "KafkaProducer", FakeProducer)
    return FakeProducer


def test_kafka_sink_keys_by_station_and_counts_unacknowledged_readings(
    producer: type[FakeProducer], metrics: GatewayMetrics
) -> None:
    sink = sinks_module.KafkaReadingSink("127.0.0.1:9", metrics)
    sent = [reading(1), reading(2, "ws-2"), reading(3)]
    for item in sent:
        sink.send(item)
    sink.close()
    [fake] = producer.created
    assert {k: fake.config[k] for k in ("acks", "enable_idempotence", "linger_ms")} == {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
    }
    assert (fake.flushed, fake.closed) == (True, True)
    assert [(topic, key) for topic, key, _, _ in fake.sent] == [
        ("scale.readings", b"ws-1"),
        ("scale.readings", b"ws-2"),
        ("scale.readings", b"ws-1"),
    ]
    assert [decode(SCALE_READINGS, value) for _, _, value, _ in fake.sent] == sent
    fake.sent[0][3].success(None)
    fake.sent[2][3].failure(KafkaTimeoutError("no acknowledgement"))
    assert metrics.value("publish_failures_total", station="ws-1") == 1
    assert metrics.value("publish_failures_total", station="ws-2") == 0


def test_kafka_sink_drops_and_counts_readings_beyond_its_queue(
    producer: type[FakeProducer], metrics: GatewayMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    blocking_send = FakeProducer.send

    def slow_send(self: FakeProducer, topic: str, key: bytes, value: bytes) -> Future:
        release.wait(timeout=5)
        return blocking_send(self, topic, key, value)

    monkeypatch.setattr(FakeProducer, "send", slow_send)
    sink = sinks_module.KafkaReadingSink("127.0.0.1:9", metrics, queue_size=2)
    for seq in range(1, 11):
        sink.send(reading(seq))
    dropped = metrics.value("publish_failures_total", station="ws-1")
    release.set()
    sink.close()
    assert 7 <= dropped <= 8
    assert len(producer.created[0].sent) == 10 - dropped


def test_settings_read_the_scales_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INGEST_SCALES",
        '[{"station": "ws-7", "host": "10.0.4.21", "port": 4001, "protocol": "mt-sics"},'
        ' {"station": "ws-8", "port": 4002, "protocol": "xk3190", "unit": "g"}]',
    )
    monkeypatch.setenv("INGEST_GATEWAY_METRICS_PORT", "0")
    monkeypatch.setenv("INGEST_LOG_LEVEL", "debug")
    settings = GatewaySettings()
    assert settings.scales == [
        ScaleConfig(station="ws-7", host="10.0.4.21", port=4001, protocol="mt-sics"),
        ScaleConfig(station="ws-8", host="127.0.0.1", port=4002, protocol="xk3190", unit="g"),
    ]
    assert (settings.gateway_metrics_port, settings.log_level) == (0, "DEBUG")


def test_settings_default_to_the_simulator_on_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BOOTSTRAP", "SCALES", "GATEWAY_METRICS_PORT", "LOG_LEVEL"):
        monkeypatch.delenv(f"INGEST_{name}", raising=False)
    settings = GatewaySettings()
    assert settings.bootstrap == "127.0.0.1:9092"
    assert settings.gateway_metrics_port == 8011
    assert [(s.station, s.port, s.protocol) for s in settings.scales] == [
        ("ws-1", 4001, "mt-sics"),
        ("ws-2", 4002, "xk3190"),
        ("ws-3", 4003, "mt-sics"),
    ]


@pytest.mark.parametrize(
    "scales",
    [
        "[]",
        '[{"station": "ws-1", "port": 4001, "protocol": "ascii"}]',
        '[{"station": "ws-1", "port": 0, "protocol": "mt-sics"}]',
        '[{"station": "ws 1", "port": 4001, "protocol": "mt-sics"}]',
        '[{"station": "ws-1", "port": 4001, "protocol": "xk3190", "unit": "lb"}]',
        '[{"station": "ws-1", "port": 4001, "protocol": "mt-sics"},'
        ' {"station": "ws-1", "port": 4002, "protocol": "xk3190"}]',
        "ws-1:4001",
    ],
    ids=[
        "none",
        "unknown-protocol",
        "port-0",
        "bad-station-id",
        "pounds",
        "station-twice",
        "not-json",
    ],
)
def test_bad_scales_fail_at_start(monkeypatch: pytest.MonkeyPatch, scales: str) -> None:
    monkeypatch.setenv("INGEST_SCALES", scales)
    with pytest.raises((ValidationError, ValueError)):
        GatewaySettings()
