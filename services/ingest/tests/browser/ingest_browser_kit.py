"""What the console's browser tests share: the app under uvicorn, a test clock, a scale player
and a driver for the console page.

The scale is fed by calling the service the way the readings feed does, with timestamps from a
clock the test moves, so "stable for a second" takes no second of waiting.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from playwright.sync_api import Page, expect

from ingest.bootstrap import LoopbackPublisher, default_profile, station_setups
from ingest.domain.tare import DEFAULT_CRATE_TARES
from ingest.entrypoints.http import create_app
from ingest.ledger import memory_source
from ingest.runtime import IngestService
from ingest.service import WeighStations
from ingest.settings import Settings, StationSetting
from melon_contracts.events import LotWeighed, ScaleReading
from melon_contracts.topics import LOTS_WEIGHED
from melon_devkit.browser import Served, serve

STATIONS = [
    StationSetting(id="ws-1"),
    StationSetting(id="ws-2"),
    StationSetting(id="ts-1", kind="truck"),
]
"""Two platform scales (d = 200 g, Min 4 kg) and a truck scale (d = 20 kg, Min 400 kg)."""


class Clock:
    """The service's clock, moved by the test; starts at the real time so tickets look real."""

    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Hall:
    """The running app and the handles a test needs to play the scale and the grader."""

    url: str
    service: IngestService
    publisher: LoopbackPublisher
    clock: Clock
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    @property
    def stations(self) -> WeighStations:
        return self.service.stations

    def reading(self, station_id: str, grams: int | None, *, overload: bool = False) -> None:
        """One frame from the station's indicator, stamped with the service's clock."""
        number = next(self._numbers)
        self.stations.observe(
            ScaleReading(
                correlation_id=station_id,
                occurred_at=datetime.fromtimestamp(self.clock(), UTC),
                station_id=station_id,
                reading_id=f"{station_id}:browser-test:{number}",
                protocol="mt-sics",
                value_g=grams,
                indicator_stable=False,
                overload=overload,
                raw="OL" if grams is None else f"S D {grams} g",
            )
        )

    def settle(self, station_id: str, grams: int) -> None:
        """The same load for longer than the stability window (1 s): the scale is at rest."""
        for _ in range(3):
            self.reading(station_id, grams)
            self.clock.advance(0.6)
        self.reading(station_id, grams)

    def swing(self, station_id: str, grams: int) -> None:
        """A load still moving: the latest reading is far from the one before."""
        self.clock.advance(0.1)
        self.reading(station_id, grams - 5_000)
        self.clock.advance(0.2)
        self.reading(station_id, grams)

    def grade_all(self) -> int:
        """Do what the grader does for every weighing published so far; returns how many."""
        graded = 0
        for message in self.publisher.on(LOTS_WEIGHED):
            assert isinstance(message, LotWeighed)
            if self.stations.grading(message.lot_id) is None:
                self.stations.grade(message)
                graded += 1
        return graded

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=5)


def build_stations(clock: Clock, publisher: LoopbackPublisher) -> WeighStations:
    """The weigh stations as ``bootstrap.build_in_memory`` wires them, on the test's clock."""
    return WeighStations(
        publisher,
        memory_source(publisher.log),
        station_setups(Settings(stations=STATIONS)),
        DEFAULT_CRATE_TARES,
        default_profile(),
        clock=clock,
    )


def start_hall() -> tuple[Hall, Served]:
    clock = Clock()
    publisher = LoopbackPublisher()
    service = IngestService(stations=build_stations(clock, publisher))
    service.start_in_line()
    hall = Hall(url="", service=service, publisher=publisher, clock=clock)
    # The indicators were on before the test began, reading an empty platform: after a start the
    # service takes no weight until it has seen its scale at zero.
    for station in STATIONS:
        hall.settle(station.id, 0)
    served = serve(create_app(service))
    hall.url = served.url
    return hall, served


# -- the console page ---------------------------------------------------------------------------


def open_console(page: Page, station: str = "ws-1", lang: Literal["zh", "en"] = "zh") -> None:
    """Open the console and wait until it has loaded its station and started the scale stream."""
    page.goto(f"/console?station={station}&lang={lang}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def remember_operator(page: Page, operator_id: str = "op-3") -> None:
    """What an earlier shift left in this PC's browser."""
    page.evaluate("id => localStorage.setItem('melon.ingest.operator', id)", operator_id)


@dataclass(frozen=True)
class Lot:
    """What the operator enters for a lot, as the console's fields take it."""

    lot_id: str
    farmer_id: str = "F-7"
    village_group: str = "三社"
    variety: str = "xizhoumi"
    crates: str = "40"
    crate_type: str = "plastic-crate"
    brix: str = "13.2 13.5, 12.9 14.1"
    fruit_weights: str = "1650 1720 1580 1700"
    plate: str | None = None


def fill_lot(page: Page, lot: Lot, operator_id: str = "op-3") -> None:
    page.fill("#operator_id", operator_id)
    page.fill("#lot_id", lot.lot_id)
    if lot.plate is not None:
        page.fill("#plate", lot.plate)
    page.fill("#farmer_id", lot.farmer_id)
    page.fill("#village_group", lot.village_group)
    page.select_option("#variety", lot.variety)
    page.fill("#crates", lot.crates)
    if lot.plate is None:
        page.select_option("#crate_type", lot.crate_type)
    page.fill("#brix", lot.brix)
    page.fill("#fruit_weights", lot.fruit_weights)
