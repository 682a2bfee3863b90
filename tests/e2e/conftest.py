"""A real broker and the hall's services as separate processes, on ports of their own.

The broker lives in a temporary folder and on free ports, so the tests run beside a hall that
``make run`` keeps up. One broker and one set of services serve the whole session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from melon_contracts.admin import ensure_topics
from melon_devkit.demo import demo_token
from melon_devkit.hall import Hall, Ports
from melon_devkit.kafka import Broker, free_port
from melon_devkit.weigh import weigh_crates


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    home = tmp_path_factory.mktemp("kafka")
    broker = Broker(home=home, port=free_port(), controller_port=free_port())
    took = broker.start()
    print(f"\nbroker {broker.bootstrap} ready in {took:.1f}s")
    ensure_topics(broker.bootstrap)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def hall(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hall]:
    home: Path = tmp_path_factory.mktemp("hall")
    hall = Hall(
        bootstrap=broker.bootstrap,
        home=home,
        ports=Ports.free(),
    )
    hall.make_demo_accounts()
    try:
        took = hall.start()
        print(f"services ready in {took:.1f}s; logs in {home / 'log'}")
        yield hall
    finally:
        hall.stop()


@pytest.fixture
def second_dispatch(hall: Hall) -> Iterator[str]:
    """A second dispatch process on its own port against the hall's broker; its base URL.

    It rebuilds the yard from the topics like the hall's own instance, so the two can be asked to
    make conflicting decisions at the same moment.
    """
    port = free_port()
    name = "dispatch-2"
    process = hall.add_dispatch(name, port, {"DISPATCH_PLAN_TIME_LIMIT_S": "0.5"})
    try:
        took = hall.start([name])
        print(f"\nsecond dispatch instance ready in {took:.1f}s")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        del hall.services[name]


def merchant(account_id: str) -> dict[str, str]:
    """The demo hall's token of an account, as the header the pricing API wants."""
    return {"Authorization": f"Bearer {demo_token(account_id)}"}


def weigh(
    hall: Hall,
    lot_id: str,
    brix: list[float],
    gross_kg: str = "464.0",
    crates: int = 40,
    station: str = "ws-1",
    fruit_weights_g: tuple[int, ...] = (2600, 2450, 2300),
) -> dict[str, Any]:
    """Weigh a lot of plastic crates (1.6 kg each) on a simulated platform scale; its ticket."""
    with httpx.Client(timeout=20) as http:
        return weigh_crates(
            http,
            hall.url("ingest"),
            hall.url("scales"),
            station,
            gross_kg,
            lot_body(lot_id, brix, crates, fruit_weights_g),
        )


def lot_body(
    lot_id: str,
    brix: list[float],
    crates: int = 40,
    fruit_weights_g: tuple[int, ...] = (2600, 2450, 2300),
) -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "farmer_id": "farmer-zhang",
        "village_group": "红沙梁3组",
        "variety": "xizhoumi",
        "harvest_date": "2026-08-12",
        "crates": crates,
        "crate_type": "plastic-crate",
        "sample": {"brix": brix, "fruit_weights_g": list(fruit_weights_g[: len(brix)])},
        "operator_id": "op-7",
    }


def eventually(probe, timeout_s: float = 30.0, every_s: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``probe`` until it returns something truthy; fail with its last value at the end."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")
