"""A scale simulator: indicators that speak MT-SICS or XK3190 over TCP, for demos and tests.

``python -m melon_devkit.scalesim --station ws-1:4001:mt-sics --station ws-2:4002:xk3190
--control-port 4100 --rate 10`` serves each station on 127.0.0.1 the way a serial-to-Ethernet
converter in front of a real indicator would, and takes orders on a small HTTP API::

    POST /scales/<station>/load     {"kg": "412.4"}   put a load on the platform
    POST /scales/<station>/unload                     take it off
    POST /scales/<station>/drift    {"kg": "0.06"}    shift the zero (the empty scale reads this)
    POST /scales/<station>/garbage  {"frames": 5}     send malformed frames in place of the next 5
    POST /scales/<station>/rate     {"hz": 200}       frames per second while streaming
    GET  /scales                                      every scale's state; /scales/<station>: one

Each platform is a small physical model: after a load change the reading moves towards the new
load with motion (noise of a few divisions that dies down) for the settle time, then stays on
the load rounded to the division, optionally flickering by one division. MT-SICS answers ``SIR``
with a continuous stream, ``SI`` with one reading, ``S`` with the next stable one, ``Z`` by
zeroing, ``@`` by stopping the stream, anything else with ``ES``. XK3190 streams as soon as a
client connects. ``ScaleSimulator`` runs the same thing in a thread of the caller's process.
A station option string tunes a platform: ``ws-1:4001:mt-sics:division_g=50,settle_s=0.5``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ingest.domain.frames import (
    ETX,
    PROTOCOLS,
    STX,
    encode_mtsics,
    encode_xk3190,
    xk3190_checksum,
)
from melon_contracts.units import UnitError, g_to_kg, kg_to_g

log = logging.getLogger("melon_devkit.scalesim")

HOST = "127.0.0.1"
DEFAULT_STATIONS = ("ws-1:4001:mt-sics", "ws-2:4002:xk3190", "ws-3:4003:mt-sics")
MAX_RATE_HZ = 1_000_000.0
MAX_BATCH = 512
"""Frames written in one go when the rate is higher than the loop can tick."""
STABLE_WAIT_S = 10.0
"""How long ``S`` waits for a stable weight before answering ``S I``, as an indicator times out."""
MOTION_NOISE_D = 5
"""Peak noise in divisions right after a load change; it dies down over the settle time."""
ZERO_RANGE = Decimal("0.02")
"""Zero may be set within ±2 % of capacity; below −2 % the indicator reports underload."""
OVERLOAD_MARGIN_D = 9
"""Above capacity + 9 d the indicator reports overload instead of a number."""


class SimulatorError(ValueError):
    """A request the simulator refuses: unknown station, bad option, value out of range."""


@dataclass(frozen=True)
class StationSpec:
    """One simulated indicator: its station id, TCP port (0 picks a free one), wire format."""

    station: str
    port: int
    protocol: str
    division_g: int = 20
    capacity_g: int = 3_000_000
    settle_s: float = 1.5
    flicker: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise SimulatorError(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", self.station):
            raise SimulatorError(f"station id {self.station!r} is not an identifier")
        if not 0 <= self.port <= 65_535:
            raise SimulatorError(f"port {self.port} is out of range")
        if self.division_g < 1 or self.capacity_g < self.division_g or self.settle_s < 0:
            raise SimulatorError(f"{self.station}: division, capacity or settle time out of range")
        # The heaviest reading: twice the capacity (the largest load taken), plus the largest
        # drift (a tenth of it) and motion noise; an XK3190 frame has 6 digits for it.
        if self.protocol == "xk3190" and 22 * self.capacity_g // 10 // self.step_g > 999_999:
            raise SimulatorError(
                f"{self.station}: an XK3190 shows 6 digits; 2.2 times the capacity in "
                f"{self.decimals}-decimal kg does not fit"
            )

    @property
    def decimals(self) -> int:
        """Decimals of kg the indicator shows: as few as still show every division."""
        for places in range(4):
            if self.division_g % 10 ** (3 - places) == 0:
                return places
        return 3

    @property
    def step_g(self) -> int:
        """Grams per last displayed digit."""
        return (1000, 100, 10, 1)[self.decimals]

    @classmethod
    def parse(cls, text: str) -> StationSpec:
        """``station:port:protocol[:key=value,...]`` with keys division_g, capacity_kg,
        settle_s and flicker (0 or 1)."""
        parts = text.split(":", 3)
        if len(parts) < 3:
            raise SimulatorError(f"{text!r}: expected station:port:protocol[:options]")
        station, port, protocol = parts[:3]
        try:
            spec = cls(station=station, port=int(port), protocol=protocol)
        except ValueError as exc:
            raise SimulatorError(f"{text!r}: {exc}") from exc
        if len(parts) == 4:
            spec = spec.with_options(parts[3])
        return spec

    def with_options(self, options: str) -> StationSpec:
        changes: dict[str, Any] = {}
        for option in filter(None, options.split(",")):
            key, _, value = option.partition("=")
            try:
                if key == "division_g":
                    changes[key] = int(value)
                elif key == "capacity_kg":
                    changes["capacity_g"] = kg_to_g(value)
                elif key == "settle_s":
                    changes[key] = float(value)
                elif key == "flicker":
                    changes[key] = value in ("1", "true", "yes")
                else:
                    raise SimulatorError(f"unknown station option {key!r}")
            except ValueError as exc:
                raise SimulatorError(f"{self.station}: option {option!r}: {exc}") from exc
        return replace(self, **changes)


@dataclass(frozen=True)
class Sample:
    """What the indicator shows at one instant."""

    value_g: int
    stable: bool
    overload: bool
    underload: bool


class ScaleModel:
    """The physics of one platform: its load, its zero, and how the reading settles.

    Thread-safe: the control API changes it from its threads while the event loop samples it.
    """

    def __init__(
        self,
        spec: StationSpec,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        self._load_g = 0
        self._zero_offset_g = 0
        self._from_g = 0.0
        self._changed_at = -math.inf

    def _target(self) -> int:
        return self._load_g + self._zero_offset_g

    def _true_value(self, now: float) -> float:
        """The unrounded reading without noise: eases from the old to the new load."""
        elapsed = now - self._changed_at
        settle = self.spec.settle_s
        if elapsed >= settle:
            return float(self._target())
        approach = min(1.0, elapsed / (0.6 * settle))
        eased = 1 - (1 - approach) ** 3
        return self._from_g + (self._target() - self._from_g) * eased

    def set_load(self, grams: int) -> None:
        with self._lock:
            now = self._clock()
            self._from_g = self._true_value(now)
            self._load_g = grams
            self._changed_at = now

    def set_drift(self, grams: int) -> None:
        with self._lock:
            self._from_g += grams - self._zero_offset_g
            self._zero_offset_g = grams

    def zero(self) -> str:
        """MT-SICS ``Z``: ``A`` done, ``I`` in motion, ``+``/``-`` outside the zero range."""
        with self._lock:
            if not self._settled(self._clock()):
                return "I"
            limit = int(self.spec.capacity_g * ZERO_RANGE)
            shown = self._target()
            if shown > limit:
                return "+"
            if shown < -limit:
                return "-"
            self._zero_offset_g = -self._load_g
            self._from_g = 0.0
            return "A"

    def _settled(self, now: float) -> bool:
        return now - self._changed_at >= self.spec.settle_s

    def settled(self) -> bool:
        with self._lock:
            return self._settled(self._clock())

    def sample(self) -> Sample:
        spec = self.spec
        division = spec.division_g
        with self._lock:
            now = self._clock()
            value = self._true_value(now)
            stable = self._settled(now)
            if stable:
                if spec.flicker and self._rng.random() < 0.3:
                    value += self._rng.choice((-division, division))
            else:
                progress = (now - self._changed_at) / spec.settle_s
                amplitude = MOTION_NOISE_D * division * (1 - progress)
                value += self._rng.uniform(-amplitude, amplitude)
        steps = math.floor(abs(value) / division + 0.5)
        shown = int(math.copysign(steps * division, value))
        overload = shown > spec.capacity_g + OVERLOAD_MARGIN_D * division
        underload = shown < -int(spec.capacity_g * ZERO_RANGE)
        return Sample(shown, stable, overload, underload)

    def state(self) -> dict[str, Any]:
        with self._lock:
            load_g, zero_offset_g = self._load_g, self._zero_offset_g
        shown = self.sample()
        return {
            "load_kg": str(g_to_kg(load_g)),
            "drift_kg": str(g_to_kg(zero_offset_g)),
            "display_kg": str(g_to_kg(shown.value_g)),
            "stable": shown.stable,
            "overload": shown.overload,
            "underload": shown.underload,
        }


_MTSICS_GARBAGE = (
    b"S S    12.3.4 kg\r\n",
    b"S X\r\n",
    b"S S      1.000 lb\r\n",
    b"S S \xff\xfe kg\r\n",
    b"S S     0.0005 kg\r\n",
)
"""Malformed lines, each one ``Malformed`` for the gateway's decoder."""


def _xk3190_garbage(kind: int, decimals: int) -> bytes:
    """Malformed XK3190 frames, each one ``Malformed`` for the gateway's decoder.

    The order matters: a cut-off frame is followed by a whole one and noise by a frame start,
    so no two of them merge into one run.
    """
    if kind == 0:
        good = encode_xk3190(0, decimals)
        flipped = b"0" if good[9:10] != b"0" else b"1"
        return good[:9] + flipped + good[10:]
    if kind == 1:
        return bytes([STX]) + b"+0012"
    if kind == 2:
        body = b"+00x000" + bytes([0x30 + decimals])
        return bytes([STX]) + body + xk3190_checksum(body) + bytes([ETX])
    if kind == 3:
        return b"\x00\xff\x10"
    body = b"+0000007"
    return bytes([STX]) + body + xk3190_checksum(body) + bytes([ETX])


GARBAGE_KINDS = 5


@dataclass
class SimulatedScale:
    """A station's model plus what its TCP side needs: rate, pending garbage, counters."""

    spec: StationSpec
    model: ScaleModel
    rate_hz: float
    port: int = 0
    clients: int = 0
    frames_sent: int = 0
    garbage_pending: int = 0
    rate_version: int = 0
    _garbage_kind: int = 0
    _last: tuple[Sample, bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take_garbage(self) -> bytes | None:
        with self._lock:
            if self.garbage_pending <= 0:
                return None
            self.garbage_pending -= 1
            kind = self._garbage_kind
            self._garbage_kind = (kind + 1) % GARBAGE_KINDS
        if self.spec.protocol == "mt-sics":
            return _MTSICS_GARBAGE[kind]
        return _xk3190_garbage(kind, self.spec.decimals)

    def encode(self, sample: Sample) -> bytes:
        last = self._last
        if last is not None and last[0] == sample:
            return last[1]
        if self.spec.protocol == "mt-sics":
            frame = encode_mtsics(
                sample.value_g,
                sample.stable,
                overload=sample.overload,
                underload=sample.underload,
                decimals=self.spec.decimals,
            )
        else:
            frame = encode_xk3190(sample.value_g, self.spec.decimals)
        self._last = (sample, frame)
        return frame

    def next_frame(self) -> bytes:
        """The next frame to stream: pending garbage first, else the current reading."""
        garbage = self.take_garbage()
        return garbage if garbage is not None else self.encode(self.model.sample())

    def set_rate(self, hz: float) -> None:
        if not 0 < hz <= MAX_RATE_HZ or math.isnan(hz):
            raise SimulatorError(f"rate must be above 0 and at most {MAX_RATE_HZ:g} Hz")
        with self._lock:
            self.rate_hz = hz
            self.rate_version += 1

    def add_garbage(self, frames: int) -> None:
        if not 1 <= frames <= 10_000:
            raise SimulatorError("garbage frames must be 1-10000")
        with self._lock:
            self.garbage_pending += frames

    def state(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "station": spec.station,
            "protocol": spec.protocol,
            "port": self.port,
            "division_g": spec.division_g,
            "capacity_kg": str(g_to_kg(spec.capacity_g)),
            **self.model.state(),
            "rate_hz": self.rate_hz,
            "clients": self.clients,
            "frames_sent": self.frames_sent,
            "garbage_pending": self.garbage_pending,
        }


def _kg_text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise SimulatorError(f'{what} needs {{"kg": <number or string>}}')
    return str(value)


def _kg(value: object, what: str, *, signed: bool = False) -> int:
    try:
        return kg_to_g(_kg_text(value, what), signed=signed)
    except UnitError as exc:
        raise SimulatorError(f"{what}: {exc}") from exc


class ScaleSimulator:
    """Simulated indicators on 127.0.0.1, served by an event loop in a thread of its own.

    ``start()`` returns once every port listens; ``ports`` maps station to its TCP port and
    ``control_port`` is the HTTP API's (None when ``control_port=None`` was asked for).
    """

    def __init__(
        self,
        stations: Sequence[StationSpec],
        *,
        control_port: int | None = 0,
        rate_hz: float = 10.0,
        seed: int | None = None,
        host: str = HOST,
    ) -> None:
        if not stations:
            raise SimulatorError("the simulator needs at least one station")
        names = [spec.station for spec in stations]
        if len(set(names)) != len(names):
            raise SimulatorError("a station is listed twice")
        rng = random.Random(seed)
        self.host = host
        self.scales: dict[str, SimulatedScale] = {}
        for spec in stations:
            scale = SimulatedScale(spec, ScaleModel(spec, random.Random(rng.random())), rate_hz)
            scale.set_rate(rate_hz)
            self.scales[spec.station] = scale
        self._control_port_asked = control_port
        self.control_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._http: _ControlServer | None = None
        self._http_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def ports(self) -> dict[str, int]:
        return {station: scale.port for station, scale in self.scales.items()}

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    def start(self) -> ScaleSimulator:
        self._thread = threading.Thread(target=self._run_loop, name="scalesim", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._failure is not None or not self._ready.is_set():
            self.stop()
            raise SimulatorError(f"the simulator did not start: {self._failure}")
        if self._control_port_asked is not None:
            try:
                self._http = _ControlServer((self.host, self._control_port_asked), self)
            except OSError as exc:
                self.stop()
                raise SimulatorError(f"the control API cannot listen: {exc}") from exc
            self.control_port = self._http.server_address[1]
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="scalesim-http",
                daemon=True,
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> ScaleSimulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._failure = exc
            for server in self._servers:
                server.close()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        for scale in self.scales.values():
            server = await asyncio.start_server(
                functools.partial(self._accept, scale), self.host, scale.spec.port
            )
            scale.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _accept(
        self, scale: SimulatedScale, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        scale.clients += 1
        peer = writer.get_extra_info("peername")
        log.info("%s: client %s connected", scale.spec.station, peer)
        try:
            if scale.spec.protocol == "mt-sics":
                await self._serve_mtsics(scale, reader, writer)
            else:
                await self._stream(scale, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except ValueError as exc:
            log.warning("%s: closing the connection from %s: %s", scale.spec.station, peer, exc)
        except asyncio.CancelledError:
            # Only stop() cancels a connection; ending quietly keeps 3.11's start_server from
            # logging the cancelled task as an error.
            pass
        finally:
            scale.clients -= 1
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("%s: client %s disconnected", scale.spec.station, peer)

    async def _serve_mtsics(
        self, scale: SimulatedScale, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        streaming: asyncio.Task[None] | None = None
        try:
            while line := await reader.readline():
                command = line.strip()
                if command == b"SIR":
                    if streaming is None or streaming.done():
                        streaming = asyncio.create_task(self._stream(scale, writer))
                elif command == b"@":
                    if streaming is not None:
                        streaming.cancel()
                        streaming = None
                    writer.write(f'I4 A "SIM-{scale.spec.station}"\r\n'.encode())
                elif command == b"SI":
                    writer.write(scale.next_frame())
                elif command == b"S":
                    writer.write(await self._stable_answer(scale))
                elif command == b"Z":
                    writer.write(f"Z {scale.model.zero()}\r\n".encode())
                elif command:
                    writer.write(b"ES\r\n")
                await writer.drain()
        finally:
            if streaming is not None:
                streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await streaming

    async def _stable_answer(self, scale: SimulatedScale) -> bytes:
        deadline = time.monotonic() + STABLE_WAIT_S
        while not scale.model.settled():
            if time.monotonic() > deadline:
                return b"S I\r\n"
            await asyncio.sleep(0.02)
        return scale.encode(scale.model.sample())

    async def _stream(self, scale: SimulatedScale, writer: asyncio.StreamWriter) -> None:
        """Write frames at the scale's rate; faster than the loop ticks, in batches."""
        version = -1
        started = 0.0
        sent = 0
        hz = scale.rate_hz
        while True:
            now = time.monotonic()
            if scale.rate_version != version:
                version, hz, started, sent = scale.rate_version, scale.rate_hz, now, 0
            due = int((now - started) * hz) + 1 - sent
            if due <= 0:
                wait = (sent / hz) - (now - started)
                await asyncio.sleep(min(max(wait, 0.0), 0.05))
                continue
            if due > MAX_BATCH:
                due = MAX_BATCH
                started = now - (sent + due) / hz
            writer.write(b"".join(scale.next_frame() for _ in range(due)))
            sent += due
            scale.frames_sent += due
            await writer.drain()
            if due == MAX_BATCH:
                await asyncio.sleep(0)

    def scale(self, station: str) -> SimulatedScale:
        try:
            return self.scales[station]
        except KeyError:
            known = ", ".join(self.scales)
            raise SimulatorError(f"unknown station {station!r}; stations: {known}") from None

    def load(self, station: str, kg: str | int | float | Decimal) -> None:
        grams = _kg(kg, "load")
        spec = self.scale(station).spec
        if not 0 <= grams <= 2 * spec.capacity_g:
            raise SimulatorError(f"a load is 0 to twice the capacity ({2 * spec.capacity_g} g)")
        self.scale(station).model.set_load(grams)

    def unload(self, station: str) -> None:
        self.scale(station).model.set_load(0)

    def drift(self, station: str, kg: str | int | float | Decimal) -> None:
        grams = _kg(kg, "drift", signed=True)
        spec = self.scale(station).spec
        if abs(grams) > spec.capacity_g // 10:
            raise SimulatorError("a zero drift is at most a tenth of the capacity")
        self.scale(station).model.set_drift(grams)

    def garbage(self, station: str, frames: int) -> None:
        self.scale(station).add_garbage(frames)

    def set_rate(self, station: str, hz: float) -> None:
        self.scale(station).set_rate(hz)

    def state(self) -> list[dict[str, Any]]:
        return [scale.state() for scale in self.scales.values()]


class _ControlApi(BaseHTTPRequestHandler):
    """JSON over HTTP on 127.0.0.1; errors as ``{"error": code, "detail": reason}``."""

    server_version = "scalesim"

    server: _ControlServer

    @property
    def simulator(self) -> ScaleSimulator:
        return self.server.simulator

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control API: " + format, *args)

    def _answer(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: HTTPStatus, code: str, detail: str) -> None:
        self._answer(status, {"error": code, "detail": detail})

    def _parts(self) -> list[str]:
        return [part for part in self.path.split("?", 1)[0].split("/") if part]

    def do_GET(self) -> None:
        parts = self._parts()
        if parts == ["scales"]:
            self._answer(HTTPStatus.OK, {"scales": self.simulator.state()})
        elif len(parts) == 2 and parts[0] == "scales" and parts[1] in self.simulator.scales:
            self._answer(HTTPStatus.OK, self.simulator.scales[parts[1]].state())
        else:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no such resource: {self.path}")

    def do_POST(self) -> None:
        parts = self._parts()
        if len(parts) != 3 or parts[0] != "scales":
            self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no such resource: {self.path}")
            return
        _, station, action = parts
        sim = self.simulator
        if station not in sim.scales:
            self._refuse(HTTPStatus.NOT_FOUND, "unknown_station", f"no station {station!r}")
            return
        try:
            body = self._body()
            if action == "load":
                sim.load(station, _kg_text(body.get("kg"), "load"))
            elif action == "unload":
                sim.unload(station)
            elif action == "drift":
                sim.drift(station, _kg_text(body.get("kg"), "drift"))
            elif action == "garbage":
                frames = body.get("frames", 1)
                if isinstance(frames, bool) or not isinstance(frames, int):
                    raise SimulatorError('garbage needs {"frames": <integer>}')
                sim.garbage(station, frames)
            elif action == "rate":
                hz = body.get("hz")
                if isinstance(hz, bool) or not isinstance(hz, int | float):
                    raise SimulatorError('rate needs {"hz": <number>}')
                sim.set_rate(station, float(hz))
            else:
                self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"no action {action!r}")
                return
        except SimulatorError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "invalid_request", str(exc))
            return
        self._answer(HTTPStatus.OK, sim.scales[station].state())

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 10_000:
            raise SimulatorError("request body too large")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SimulatorError(f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise SimulatorError("body must be a JSON object")
        return body


class _ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: ScaleSimulator) -> None:
        super().__init__(address, _ControlApi)
        self.simulator = simulator


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m melon_devkit.scalesim", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--station",
        action="append",
        metavar="ID:PORT:PROTOCOL[:OPTIONS]",
        help=f"a simulated indicator (repeatable); default {' '.join(DEFAULT_STATIONS)}",
    )
    parser.add_argument("--control-port", type=int, default=4100, help="HTTP API port (0: free)")
    parser.add_argument(
        "--host", default=HOST, help="address to listen on (0.0.0.0 inside a container)"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second per station")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable noise pattern")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        specs = [StationSpec.parse(text) for text in (args.station or DEFAULT_STATIONS)]
        simulator = ScaleSimulator(
            specs,
            host=args.host,
            control_port=args.control_port,
            rate_hz=args.rate,
            seed=args.seed,
        )
        simulator.start()
    except (SimulatorError, OSError) as exc:
        parser.exit(2, f"scalesim: {exc}\n")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    for scale in simulator.scales.values():
        spec = scale.spec
        print(
            f"scalesim: {spec.station} speaks {spec.protocol} on {args.host}:{scale.port} "
            f"(d = {spec.division_g} g, Max {g_to_kg(spec.capacity_g)} kg, {scale.rate_hz:g} Hz)",
            flush=True,
        )
    print(f"scalesim: control API on {simulator.control_url}/scales", flush=True)
    print("scalesim ready", flush=True)
    try:
        stopping.wait()
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
