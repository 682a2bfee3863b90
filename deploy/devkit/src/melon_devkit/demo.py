"""A small demo day fed through the hall's front doors, never by writing topics.

Two trucks check in; six lots are put on the simulated platform scales (which speak MT-SICS and
the XK3190 frame to the gateway), weighed, ticketed and graded; merchants bid, the matcher trades,
and the sold goods are put on trucks. Ids are fixed, so feeding twice changes nothing the second
time: a lot tag scanned again returns its ticket.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import httpx

from melon_devkit.weigh import weigh_crates
from pricing.accounts import Role

T = TypeVar("T")

LOTS = [
    ("MQ-0001", "farmer-zhang-san", "xizhoumi", 40, "476.4", [14.2, 14.8, 15.1]),
    ("MQ-0002", "farmer-li-si", "xizhoumi", 36, "437.6", [12.4, 12.9, 13.0]),
    ("MQ-0003", "farmer-wang-wu", "ganmibao", 50, "585.0", [13.1, 12.2, 12.8]),
    ("MQ-0004", "farmer-zhao-liu", "yujinxiang", 30, "346.2", [10.5, 11.2, 10.9]),
    ("MQ-0005", "farmer-sun-qi", "xizhoumi", 45, "538.0", [12.1, 12.6, 12.3]),
    ("MQ-0006", "farmer-zhou-ba", "ganmibao", 28, "315.6", [9.1, 9.8, 9.4]),
]
"""Lot tag, farmer household, variety, plastic crates, gross kg on the platform, Brix sample."""
FRUIT_WEIGHTS_G = [2450, 2300, 2600]
"""The sampled fruits' weights: sizes 1 and 2 of the Minqin profile."""
BIDS = [
    ("DEMO-B1", "merchant-lanzhou", "xizhoumi", "extra", "7.20", "400", "兰州", True),
    ("DEMO-B2", "merchant-xian", "xizhoumi", "class_i", "5.60", "600", "西安", False),
    ("DEMO-B3", "shop-online-01", "ganmibao", "class_i", "5.10", "300", "杭州", True),
    ("DEMO-B4", "merchant-chengdu", "yujinxiang", "class_ii", "3.80", "500", "成都", False),
]
DEMO_ACCOUNTS: list[tuple[str, str, str, Role]] = [
    ("merchant-lanzhou", "兰州果品批发", "50000", "merchant"),
    ("merchant-xian", "西安鲜果行", "50000", "merchant"),
    ("shop-online-01", "蜜瓜网店", "20000", "merchant"),
    ("merchant-chengdu", "成都果业", "50000", "merchant"),
    ("coop-minqin", "民勤蜜瓜合作社", "0", "cooperative"),
]
"""Accounts the demo hall makes: id, name, purchase limit in yuan, role."""


def demo_token(account_id: str) -> str:
    """The demo hall's token of an account. Demo only: real accounts get random tokens."""
    return f"demo-{account_id}"


TRUCKS = [
    ("甘H·A1234", "马师傅", "13800000001", "8000", True),
    ("甘H·B5678", "杨师傅", "13800000002", "12000", False),
]


def feed(ingest: str, pricing: str, dispatch: str, scales: str, out: TextIO = sys.stdout) -> None:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    with httpx.Client(timeout=20) as http:
        say("demo: two trucks check in at the gate")
        for plate, driver, phone, capacity, cold in TRUCKS:
            _post(
                http,
                f"{dispatch}/trucks",
                {
                    "plate": plate,
                    "driver": driver,
                    "phone": phone,
                    "capacity_kg": capacity,
                    "refrigerated": cold,
                    "checked_in_by": "gate-1",
                },
            )
        say(f"demo: {len(LOTS)} lots on the scales of ws-1 (MT-SICS) and ws-2 (XK3190)")
        for i, (lot_id, farmer, variety, crates, gross_kg, brix) in enumerate(LOTS):
            ticket = weigh_crates(
                http,
                ingest,
                scales,
                f"ws-{1 + i % 2}",
                gross_kg,
                {
                    "lot_id": lot_id,
                    "farmer_id": farmer,
                    "village_group": f"{1 + i % 4}组",
                    "variety": variety,
                    "crates": crates,
                    "crate_type": "plastic-crate",
                    "sample": {"brix": brix, "fruit_weights_g": FRUIT_WEIGHTS_G[: len(brix)]},
                    "operator_id": "op-demo",
                },
            )
            say(
                f"  {lot_id}: ticket {ticket['station_id']}/{ticket['ticket_no']}, "
                f"gross {ticket['gross_kg']} - tare {ticket['tare_kg']} = net {ticket['net_kg']} kg"
            )
        grades = _wait_for(lambda: _graded(http, ingest), "lots graded")
        for lot_id, grade in sorted(grades.items()):
            say(f"  {lot_id}: {grade}")
        say(f"demo: {len(BIDS)} merchants bid")
        for bid_id, merchant, variety, grade, price, kg, destination, cold in BIDS:
            _post(
                http,
                f"{pricing}/bids",
                {
                    "bid_id": bid_id,
                    "variety": variety,
                    "grade": grade,
                    "price_yuan_per_kg": price,
                    "quantity_kg": kg,
                    "destination": destination,
                    "cold_chain": cold,
                },
                headers={"Authorization": f"Bearer {demo_token(merchant)}"},
            )
        shipments = _wait_for(lambda: _shipments(http, dispatch), "trades reached dispatch")
        say(f"demo: {len(shipments)} shipments from trades; assigning them to trucks")
        for shipment in shipments:
            if shipment["status"] != "waiting":
                continue
            plate = TRUCKS[0][0] if shipment["cold_chain"] else TRUCKS[1][0]
            _post(
                http,
                f"{dispatch}/assignments",
                {
                    "plate": plate,
                    "shipment_ids": [shipment["shipment_id"]],
                    "assigned_by": "yard-1",
                },
            )
            say(f"  {shipment['lot_id']} ({shipment['weight_kg']} kg) -> {plate}")


def _post(
    http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    response = http.post(url, json=body, headers=headers)
    if response.status_code == 409:
        return
    response.raise_for_status()


def _graded(http: httpx.Client, ingest: str) -> dict[str, str] | None:
    grades = {}
    for lot_id, *_ in LOTS:
        lot = http.get(f"{ingest}/lots/{lot_id}").json()
        if lot.get("status") != "graded":
            return None
        grade = lot["grade"]
        grades[lot_id] = f"{grade['grade_zh']} ({grade['grade']}): {grade['reason']}"
    return grades


def _shipments(http: httpx.Client, dispatch: str) -> list[dict[str, Any]] | None:
    shipments: list[dict[str, Any]] = http.get(f"{dispatch}/shipments").json()
    lots = {s["lot_id"] for s in shipments}
    return shipments if {"MQ-0001", "MQ-0002", "MQ-0003", "MQ-0004"} <= lots else None


def _wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"demo: gave up waiting: {what}")
