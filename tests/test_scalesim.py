"""The scale simulator: its physics, its wire formats on TCP and its HTTP control API."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingest.domain.frames import Frame, Malformed, MtSicsDecoder, Xk3190Decoder
from melon_devkit.scalesim import (
    ScaleModel,
    ScaleSimulator,
    SimulatorError,
    StationSpec,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def model(clock: FakeClock, **options: Any) -> ScaleModel:
    spec = StationSpec("ws-1", 0, "mt-sics", **options)
    return ScaleModel(spec, random.Random(5), clock)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ws-1:4001:mt-sics", StationSpec("ws-1", 4001, "mt-sics")),
        (
            "ws-2:0:xk3190:division_g=50,capacity_kg=600,settle_s=0.5,flicker=1",
            StationSpec("ws-2", 0, "xk3190", 50, 600_000, 0.5, True),
        ),
        ("truck.1:4005:mt-sics:", StationSpec("truck.1", 4005, "mt-sics")),
    ],
)
def test_station_option_strings(text: str, expected: StationSpec) -> None:
    assert StationSpec.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ws-1:4001",
        "ws-1:port:mt-sics",
        "ws-1:4001:ascii",
        "ws 1:4001:mt-sics",
        "ws-1:70000:mt-sics",
        "ws-1:4001:mt-sics:weird=1",
        "ws-1:4001:mt-sics:division_g=0",
        "ws-1:4001:mt-sics:capacity_kg=0.0001",
        "ws-1:4001:xk3190:capacity_kg=20000",
    ],
)
def test_bad_station_option_strings_are_refused(text: str) -> None:
    with pytest.raises(SimulatorError):
        StationSpec.parse(text)


@pytest.mark.parametrize(
    ("division_g", "decimals"),
    [(1, 3), (5, 3), (10, 2), (20, 2), (50, 2), (100, 1), (500, 1), (1000, 0), (2000, 0)],
)
def test_the_indicator_shows_as_many_decimals_as_the_division_needs(
    division_g: int, decimals: int
) -> None:
    assert StationSpec("ws-1", 0, "mt-sics", division_g=division_g).decimals == decimals


def test_a_load_moves_in_motion_for_the_settle_time_then_reads_exactly() -> None:
    clock = FakeClock()
    scale = model(clock, settle_s=1.5)
    scale.set_load(412_400)
    moving = []
    for step in range(15):
        clock.now = 100.0 + step * 0.1
        moving.append(scale.sample())
    assert not any(sample.stable for sample in moving)
    assert all(sample.value_g % 20 == 0 for sample in moving)
    assert len({sample.value_g for sample in moving}) > 5
    assert all(-100 <= sample.value_g <= 412_400 + 100 for sample in moving)
    clock.now = 101.5
    assert {scale.sample() for _ in range(20)} == {scale.sample()}
    sample = scale.sample()
    assert (sample.value_g, sample.stable, sample.overload, sample.underload) == (
        412_400,
        True,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("load_g", "shown_g"),
    [(412_409, 412_400), (412_410, 412_420), (412_431, 412_440), (-412_410, -412_420)],
    ids=["down", "half-up", "up", "negative-half-away-from-zero"],
)
def test_readings_are_rounded_to_the_division(load_g: int, shown_g: int) -> None:
    clock = FakeClock()
    scale = model(clock, settle_s=0.0, capacity_g=1_000_000)
    scale.set_load(max(load_g, 0))
    scale.set_drift(min(load_g, 0))
    assert scale.sample().value_g == shown_g


def test_flicker_stays_within_one_division() -> None:
    clock = FakeClock()
    scale = model(clock, settle_s=0.0, flicker=True)
    scale.set_load(100_000)
    values = {scale.sample().value_g for _ in range(200)}
    assert values == {99_980, 100_000, 100_020}


@pytest.mark.parametrize(
    ("load_g", "drift_g", "overload", "underload"),
    [
        (100_180, 0, False, False),
        (100_200, 0, True, False),
        (0, -2_000, False, False),
        (0, -2_020, False, True),
    ],
    ids=["capacity-plus-9d", "past-capacity-plus-9d", "minus-2-percent", "below-minus-2-percent"],
)
def test_overload_and_underload_limits(
    load_g: int, drift_g: int, overload: bool, underload: bool
) -> None:
    clock = FakeClock()
    scale = model(clock, settle_s=0.0, capacity_g=100_000)
    scale.set_load(load_g)
    scale.set_drift(drift_g)
    sample = scale.sample()
    assert (sample.overload, sample.underload) == (overload, underload)


def test_zero_is_set_only_at_rest_and_within_two_percent() -> None:
    clock = FakeClock()
    scale = model(clock, settle_s=1.0, capacity_g=100_000)
    scale.set_drift(60)
    assert scale.sample().value_g == 60
    scale.set_load(50_000)
    assert scale.zero() == "I"
    clock.now += 1.0
    assert scale.zero() == "+"
    scale.set_load(0)
    clock.now += 1.0
    assert scale.zero() == "A"
    assert scale.sample().value_g == 0
    scale.set_drift(-3_000)
    assert scale.zero() == "-"


@pytest.fixture
def sim() -> Iterator[ScaleSimulator]:
    specs = [
        StationSpec("ws-1", 0, "mt-sics", settle_s=0.3),
        StationSpec("ws-2", 0, "xk3190", settle_s=0.3),
    ]
    with ScaleSimulator(specs, rate_hz=50, seed=11) as simulator:
        yield simulator


@pytest.fixture
def api(sim: ScaleSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.control_url, timeout=5) as client:
        yield client


def test_ports_are_picked_when_asked_for_port_0(sim: ScaleSimulator) -> None:
    assert sim.control_port and all(port > 0 for port in sim.ports.values())
    assert len({*sim.ports.values(), sim.control_port}) == 3


def test_the_control_api_moves_loads_and_reports_state(
    sim: ScaleSimulator, api: httpx.Client
) -> None:
    answer = api.post("/scales/ws-1/load", json={"kg": "412.4"})
    assert answer.status_code == 200
    assert (answer.json()["load_kg"], answer.json()["stable"]) == ("412.4", False)
    api.post("/scales/ws-2/load", json={"kg": 12.5})
    api.post("/scales/ws-2/drift", json={"kg": "0.06"})
    api.post("/scales/ws-2/garbage", json={"frames": 5})
    api.post("/scales/ws-2/rate", json={"hz": 200})
    scales = {scale["station"]: scale for scale in api.get("/scales").json()["scales"]}
    assert scales["ws-1"]["port"] == sim.ports["ws-1"]
    assert {k: scales["ws-2"][k] for k in ("load_kg", "drift_kg", "rate_hz")} == {
        "load_kg": "12.5",
        "drift_kg": "0.06",
        "rate_hz": 200,
    }
    assert scales["ws-2"]["garbage_pending"] == 5
    deadline = time.monotonic() + 3
    while not (settled := api.get("/scales/ws-1").json())["stable"]:
        assert time.monotonic() < deadline, settled
        time.sleep(0.02)
    assert settled["display_kg"] == "412.4"
    assert api.post("/scales/ws-1/unload").json()["load_kg"] == "0"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/scales/ws-9/load", {"kg": "1"}, 404, "unknown_station"),
        ("POST", "/scales/ws-1/lift", {}, 404, "not_found"),
        ("GET", "/scales/ws-9", None, 404, "not_found"),
        ("GET", "/weights", None, 404, "not_found"),
        ("POST", "/scales/ws-1/load", {"kg": "-1"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", {"kg": "abc"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", {"kg": "1.0001"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", {"kg": True}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", {"kg": "6000.02"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", {}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/drift", {"kg": "400"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/rate", {"hz": 0}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/garbage", {"frames": "5"}, 400, "invalid_request"),
        ("POST", "/scales/ws-1/load", "not json", 400, "invalid_request"),
    ],
)
def test_the_control_api_refuses_bad_requests(
    api: httpx.Client, method: str, path: str, body: object, status: int, error: str
) -> None:
    if isinstance(body, str):
        answer = api.request(method, path, content=body)
    else:
        answer = api.request(method, path, json=body)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["detail"]


class Client:
    """A raw TCP client of one simulated indicator."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def read_for(self, seconds: float) -> bytes:
        data, self.buffer = self.buffer, b""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65_536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def mtsics(sim: ScaleSimulator) -> Iterator[Client]:
    client = Client(sim.ports["ws-1"])
    yield client
    client.close()


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"SI", rb"S [SD] +0\.00 kg"),
        (b"S", rb"S S +0\.00 kg"),
        (b"Z", rb"Z A"),
        (b"@", rb'I4 A "SIM-ws-1"'),
        (b"XYZ", rb"ES"),
        (b"si", rb"ES"),
    ],
)
def test_mtsics_commands_are_answered(mtsics: Client, command: bytes, answer: bytes) -> None:
    mtsics.send(command + b"\r\n")
    assert re.fullmatch(answer, mtsics.line())


def test_mtsics_s_waits_for_a_stable_weight(sim: ScaleSimulator, mtsics: Client) -> None:
    sim.load("ws-1", "41.24")
    began = time.monotonic()
    mtsics.send(b"S\r\n")
    assert mtsics.line() == b"S S      41.24 kg"
    assert time.monotonic() - began >= 0.2


def test_mtsics_sir_streams_at_the_rate_until_cancelled(
    sim: ScaleSimulator, mtsics: Client
) -> None:
    sim.set_rate("ws-1", 200)
    mtsics.send(b"SIR\r\n")
    items = MtSicsDecoder().feed(mtsics.read_for(0.5))
    assert 60 <= len(items) <= 140
    assert all(isinstance(item, Frame) and item.value_g == 0 for item in items[:-1])
    mtsics.send(b"@\r\n")
    tail = mtsics.read_for(0.2)
    assert b'I4 A "SIM-ws-1"\r\n' in tail
    assert mtsics.read_for(0.2) == b""


def test_xk3190_streams_once_a_client_connects(sim: ScaleSimulator) -> None:
    client = Client(sim.ports["ws-2"])
    try:
        items = Xk3190Decoder().feed(client.read_for(0.3))
    finally:
        client.close()
    assert len(items) >= 5
    assert {item.value_g for item in items if isinstance(item, Frame)} == {0}


@pytest.mark.parametrize("station", ["ws-1", "ws-2"])
def test_garbage_goes_into_the_stream_as_that_many_malformed_frames(
    sim: ScaleSimulator, station: str
) -> None:
    client = Client(sim.ports[station])
    decoder = MtSicsDecoder() if station == "ws-1" else Xk3190Decoder()
    try:
        if station == "ws-1":
            client.send(b"SIR\r\n")
        sim.garbage(station, 7)
        items = decoder.feed(client.read_for(0.4))
    finally:
        client.close()
    assert len([item for item in items if isinstance(item, Malformed)]) == 7
    assert len([item for item in items if isinstance(item, Frame)]) >= 5


def test_the_command_line_runs_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "melon_devkit.scalesim",
            "--station",
            "ws-5:0:xk3190:division_g=10",
            "--control-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "scalesim ready":
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.strip())
        url = re.search(r"http://127\.0\.0\.1:\d+", "\n".join(lines))
        assert url is not None
        [scale] = httpx.get(f"{url.group(0)}/scales", timeout=5).json()["scales"]
        assert (scale["station"], scale["protocol"], scale["division_g"]) == ("ws-5", "xk3190", 10)
        assert any(f"ws-5 speaks xk3190 on 127.0.0.1:{scale['port']}" in line for line in lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_taken_port_is_refused_with_a_reason(sim: ScaleSimulator) -> None:
    taken = sim.ports["ws-1"]
    with pytest.raises(SimulatorError, match="did not start"):
        ScaleSimulator([StationSpec("ws-7", taken, "mt-sics")], control_port=None).start()
    with pytest.raises(SimulatorError, match="control API"):
        ScaleSimulator([StationSpec("ws-8", 0, "xk3190")], control_port=sim.control_port).start()
