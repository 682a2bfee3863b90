"""What the truck yard's browser tests share: the dispatch API and its pages under uvicorn, trades
as the matcher sends them, and a second dispatcher who works through the JSON API.

The service is the one ``build_in_memory`` gives: its decisions go to an in-memory log and are
folded back at once, as the yard's reader would, so what the page or the other dispatcher decided
is on the board as soon as the request answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Page

from dispatch.bootstrap import build_in_memory
from dispatch.domain.yard import Assign, Visit
from dispatch.entrypoints.http import create_app
from dispatch.service import DispatchService
from melon_contracts.envelope import utc_now
from melon_contracts.events import TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.units import amount_fen, kg_to_g
from melon_devkit import browser
from melon_devkit.browser import serve

OPERATOR_KEY = "melon.dispatch.operator"

OTHER_DISPATCHER = "disp-02"
"""A colleague at another screen, deciding through the API."""

_numbers = itertools.count(1)


def trade(
    merchant_id: str = "M-LZ-01",
    destination: str = "兰州",
    weight_kg: str = "1200",
    *,
    crates: int = 60,
    cold_chain: bool = False,
    lot_id: str | None = None,
    farmer_id: str = "F-0007",
    variety: str = "xizhoumi",
    grade: Grade = Grade.CLASS_I,
    minutes_ago: int = 30,
) -> TradeExecuted:
    """A trade as the matcher publishes it; each call is a new lot and trade."""
    n = next(_numbers)
    weight_g = kg_to_g(weight_kg)
    book = f"{variety}.{grade.value}"
    return TradeExecuted(
        correlation_id=lot_id or f"L-{n:04d}",
        occurred_at=utc_now() - timedelta(minutes=minutes_ago),
        trade_id=f"{book}:{n}",
        book=book,
        sequence=n,
        lot_id=lot_id or f"L-{n:04d}",
        farmer_id=farmer_id,
        bid_id=f"B-{n:04d}",
        merchant_id=merchant_id,
        variety=variety,
        grade=grade,
        crates=crates,
        weight_g=weight_g,
        price_fen_per_kg=560,
        amount_fen=amount_fen(weight_g, 560),
        destination=destination,
        cold_chain=cold_chain,
    )


@dataclass
class Yard:
    """The dispatch service with its pages on 127.0.0.1, and a way to act beside the page."""

    url: str
    service: DispatchService

    def trades(self, *trades: TradeExecuted) -> list[TradeExecuted]:
        """Trades arriving from the matcher."""
        for one in trades:
            self.service.record_trade(one)
        return list(trades)

    def api(self, method: str, path: str, body: Any = None, expected: int = 200) -> Any:
        """The JSON API as another dispatcher's screen or a script calls it."""
        response = httpx.request(method, f"{self.url}{path}", json=body, timeout=10)
        assert response.status_code == expected, response.text
        return response.json()

    def check_in(
        self,
        plate: str,
        capacity_kg: str = "10000",
        *,
        refrigerated: bool = False,
        setpoint_c: str | None = None,
        destinations: tuple[str, ...] = (),
        driver: str = "王师傅",
        phone: str = "13909350001",
    ) -> dict[str, Any]:
        body = {
            "plate": plate,
            "driver": driver,
            "phone": phone,
            "capacity_kg": capacity_kg,
            "refrigerated": refrigerated,
            "setpoint_c": setpoint_c,
            "destinations": list(destinations),
            "checked_in_by": "gate-1",
        }
        truck: dict[str, Any] = self.api("POST", "/trucks", body, expected=201)
        return truck

    def assign(self, plate: str, *trades: TradeExecuted, by: str = OTHER_DISPATCHER) -> Any:
        body = {"plate": plate, "trade_ids": [t.trade_id for t in trades], "assigned_by": by}
        return self.api("POST", "/assignments", body, expected=201)

    def to_bay(self, plate: str, bay: int, by: str = OTHER_DISPATCHER) -> Any:
        return self.api("POST", f"/trucks/{quote(plate)}/bay", {"bay": bay, "by": by})

    def loaded(self, plate: str, by: str = OTHER_DISPATCHER) -> Any:
        return self.api("POST", f"/trucks/{quote(plate)}/loaded", {"by": by})

    def depart(self, plate: str, by: str = OTHER_DISPATCHER) -> Any:
        return self.api("POST", f"/trucks/{quote(plate)}/departure", {"by": by})

    def visit(self, plate: str) -> Visit:
        return self.service.read(lambda yard: yard.latest_visit(plate))

    def assignments(self, plate: str) -> list[Assign]:
        """The standing assignments on a truck, oldest first."""
        return self.service.read(lambda yard: [a for a in yard.assignments() if a.plate == plate])

    def holder(self, one: TradeExecuted) -> str | None:
        """The plate of the truck a trade's goods are on, if any."""
        assignment = self.service.read(lambda yard: yard.holder(one.trade_id))
        return None if assignment is None else assignment.plate


def start_yard(bays: int = 4, auto_suggest: bool = False) -> Iterator[Yard]:
    """The dispatch API the yard runs, without a broker."""
    service, _ = build_in_memory(bays=bays, auto_suggest=auto_suggest)
    if auto_suggest:
        # The test server runs without lifespan, so the planner thread is started here.
        service.start()
    served = serve(create_app(service), name="dispatch")
    try:
        yield Yard(url=served.url, service=service)
    finally:
        served.stop()
        service.stop()


def _decision(method: str, path: str) -> bool:
    return method == "POST"


class Traffic(browser.Traffic):
    """The decisions a page sends (every POST), in order."""

    def __init__(self, page: Page) -> None:
        super().__init__(page, keep=_decision)

    def to(self, path: str) -> list[browser.Sent]:
        return self.sent(path)
