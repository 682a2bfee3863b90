"""The broker killed under a running hall: every service says it is degraded while it is away and
takes writes again soon after it is back.

The hall here has a broker of its own, so killing it disturbs no other test. Recovery times are
printed, not asserted to the second: the deadline only separates "soon" from the half minute
the Kafka clients used to wait between reconnection attempts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from melon_contracts.admin import ensure_topics
from melon_devkit.demo import demo_token
from melon_devkit.hall import Hall, Ports
from melon_devkit.kafka import Broker, free_port
from melon_devkit.weigh import load, unload

from .conftest import eventually, lot_body

pytestmark = pytest.mark.e2e

BACK_WITHIN_S = 15.0
SERVICES = ("ingest", "pricing", "dispatch")


@pytest.fixture(scope="module")
def own_hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Hall]]:
    broker = Broker(
        home=tmp_path_factory.mktemp("kafka-own"), port=free_port(), controller_port=free_port()
    )
    broker.start()
    ensure_topics(broker.bootstrap)
    hall = Hall(
        bootstrap=broker.bootstrap, home=tmp_path_factory.mktemp("hall-own"), ports=Ports.free()
    )
    hall.make_demo_accounts()
    try:
        hall.start()
        yield broker, hall
    finally:
        hall.stop()
        broker.stop()


def health(hall: Hall, service: str) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"{hall.url(service)}/healthz", timeout=5)
    except httpx.HTTPError as exc:
        return 0, {"error": str(exc)}
    return response.status_code, response.json()


def bid(hall: Hall, bid_id: str) -> httpx.Response:
    return httpx.post(
        f"{hall.url('pricing')}/bids",
        headers={"Authorization": f"Bearer {demo_token('merchant-lanzhou')}"},
        json={
            "bid_id": bid_id,
            "variety": "xizhoumi",
            "grade": "class_i",
            "price_yuan_per_kg": "4.60",
            "quantity_kg": "10",
        },
        timeout=20,
    )


def check_in(hall: Hall, plate: str) -> httpx.Response:
    return httpx.post(
        f"{hall.url('dispatch')}/trucks",
        json={
            "plate": plate,
            "driver": "李师傅",
            "phone": "13900000001",
            "capacity_kg": "5000",
            "refrigerated": False,
            "checked_in_by": "gate-1",
        },
        timeout=30,
    )


class Unstable:
    """What the station's scale showed when it was not yet stable: a probe's last word."""

    status_code = 0

    def __init__(self, scale: dict[str, Any]) -> None:
        self.scale = scale

    def __repr__(self) -> str:
        return f"scale not stable: {self.scale}"


def weighing(hall: Hall, lot_id: str) -> httpx.Response | Unstable:
    """A weighing of the loaded ws-1 once its scale shows a stable load, else what it showed.

    A try whose answer was lost may have been recorded: the lot's tag then gives its ticket
    (200), as it does for an operator who scans it again.
    """
    ingest = hall.url("ingest")
    scale = httpx.get(f"{ingest}/stations/ws-1/scale", timeout=5).json()
    if not scale.get("stable"):
        return Unstable(scale)
    body = lot_body(lot_id, [12.5, 12.8, 12.6])
    return httpx.post(f"{ingest}/stations/ws-1/weighings", json=body, timeout=30)


def test_services_say_degraded_without_the_broker_and_take_writes_soon_after_it_returns(
    own_hall: tuple[Broker, Hall],
) -> None:
    broker, hall = own_hall
    run = uuid.uuid4().hex[:6].upper()
    assert all(health(hall, s)[0] == 200 for s in SERVICES)
    assert bid(hall, f"BR-{run}-0").status_code == 202

    # When the broker is killed
    broker.kill()

    # Then every service says it is degraded and why, and refuses writes with a reason
    def all_degraded() -> dict[str, Any] | None:
        seen = {s: health(hall, s) for s in SERVICES}
        if all(
            code == 503 and "broker_unreachable" in body.get("degraded", {})
            for code, body in seen.values()
        ):
            return seen
        return None

    eventually(all_degraded, timeout_s=30, every_s=0.5)
    refused = bid(hall, f"BR-{run}-1")
    assert refused.status_code == 503, refused.text
    with httpx.Client(timeout=10) as http:
        load(http, hall.url("scales"), "ws-1", "464.0")

    # When it comes back
    broker.start()
    back = time.monotonic()
    took: dict[str, float] = {}

    def written(name: str, attempt: Any, ok: tuple[int, ...]) -> None:
        last: list[Any] = []

        def probe() -> bool:
            response = attempt()
            last[:] = [response]
            return response.status_code in ok

        try:
            eventually(probe, timeout_s=BACK_WITHIN_S + 20, every_s=0.25)
        except AssertionError as exc:
            said = last[0] if last else None
            text = getattr(said, "text", repr(said))
            raise AssertionError(f"{name} not taken again; the last answer: {text}") from exc
        took[name] = time.monotonic() - back

    # Then bids, check-ins and weighings are taken again, and health is ok
    written("bid", lambda: bid(hall, f"BR-{run}-2"), (202,))
    written("check-in", lambda: check_in(hall, f"甘B{run[:5]}"), (201,))
    written("weighing", lambda: weighing(hall, f"BR-{run}-L"), (200, 201))
    with httpx.Client(timeout=10) as http:
        unload(http, hall.url("scales"), "ws-1")
    eventually(lambda: all(health(hall, s)[0] == 200 for s in SERVICES), timeout_s=BACK_WITHIN_S)
    print(f"\nwrites back after the broker answered: {took}")
    assert all(seconds < BACK_WITHIN_S for seconds in took.values()), took
