"""The truck yard through the real broker, with dispatch instances as separate processes.

Graded lots go straight onto ``lots.graded`` (the weigh stations have their own tests) and
merchants buy them through the pricing API, so the trades dispatch sees come from the real
matcher. Every lot here is 10 crates of 100 kg in the Yujinxiang class I book, which no other test
trades in, and every bid buys exactly one lot, so nothing is left resting for another test. Each
test names its own destinations and gives every truck it checks in destinations, so the planner
can put a test's shipments only on that test's trucks however full the shared yard is.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from melon_contracts.codec import encode
from melon_contracts.events import LotGraded, ShipmentAssigned, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import DISPATCH_YARD, LOTS_GRADED, TRADES
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from melon_devkit.trace import read_topic

from .conftest import eventually, merchant

pytestmark = pytest.mark.e2e

VARIETY, GRADE = "yujinxiang", Grade.CLASS_I
LOT_CRATES, LOT_G = 10, 100_000
ROUNDS = 5
"""Races between the two instances; each is a real one unless a request is slower by a whole
round trip through the broker, so a handful makes at least one certain."""


@dataclass(frozen=True)
class Order:
    """A merchant buying one lot for a destination, with or without cold chain."""

    merchant: str
    destination: str
    cold_chain: bool


def tag() -> str:
    return uuid.uuid4().hex[:6]


def new_plate(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:5].upper()}"


def graded_lot(lot_id: str) -> LotGraded:
    return LotGraded(
        correlation_id=lot_id,
        lot_id=lot_id,
        station_id="ws-1",
        ticket_no=1,
        farmer_id="farmer-yard",
        variety=VARIETY,
        crates=LOT_CRATES,
        net_g=LOT_G,
        grade=GRADE,
        profile_id="minqin-honeydew",
        profile_version=1,
        brix_mean=12.5,
        brix_samples=3,
        reason="test lot",
    )


def sell(broker: Broker, hall: Hall, orders: Sequence[Order]) -> list[TradeExecuted]:
    """One lot per order, bought whole by that order's bid; the trades in the orders' order."""
    run = tag()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        for n in range(len(orders)):
            lot_id = f"Y{run}-L{n}"
            producer.send(LOTS_GRADED.name, key=lot_id.encode(), value=encode(graded_lot(lot_id)))
        producer.flush()
    finally:
        producer.close()
    bid_ids = [f"Y{run}-B{n}" for n in range(len(orders))]
    with httpx.Client(timeout=20) as http:
        for bid_id, order in zip(bid_ids, orders, strict=True):
            response = http.post(
                f"{hall.url('pricing')}/bids",
                headers=merchant(order.merchant),
                json={
                    "bid_id": bid_id,
                    "variety": VARIETY,
                    "grade": GRADE.value,
                    "price_yuan_per_kg": "5.00",
                    "quantity_kg": str(LOT_G // 1000),
                    "destination": order.destination,
                    "cold_chain": order.cold_chain,
                },
            )
            assert response.status_code == 202, response.text
    by_bid = eventually(lambda: _trades_of(broker, bid_ids), timeout_s=60, every_s=0.5)
    return [by_bid[bid_id] for bid_id in bid_ids]


def _trades_of(broker: Broker, bid_ids: Sequence[str]) -> dict[str, TradeExecuted] | None:
    trades = {
        m.bid_id: m
        for _, m in read_topic(broker.bootstrap, TRADES)
        if isinstance(m, TradeExecuted) and m.bid_id in bid_ids
    }
    return trades if len(trades) == len(bid_ids) else None


def get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}{path}", params=params, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30)


def check_in(
    url: str,
    plate: str,
    destinations: list[str],
    capacity_kg: str = "1000",
    setpoint_c: str | None = None,
) -> dict[str, Any]:
    """A truck through the gate; a set-point makes it a reefer."""
    response = post(
        url,
        "/trucks",
        {
            "plate": plate,
            "driver": "马师傅",
            "phone": "13800000000",
            "capacity_kg": capacity_kg,
            "refrigerated": setpoint_c is not None,
            "setpoint_c": setpoint_c,
            "destinations": destinations,
            "checked_in_by": "gate-1",
        },
    )
    assert response.status_code == 201, response.text
    truck: dict[str, Any] = response.json()
    return truck


def waiting_with(url: str, trade_ids: Iterable[str]) -> list[dict[str, Any]] | None:
    """The waiting shipments holding these trades, once every one of them is waiting."""
    wanted = set(trade_ids)
    shipments = [
        s for s in get(url, "/shipments") if wanted & {line["trade_id"] for line in s["lines"]}
    ]
    held = {line["trade_id"] for s in shipments for line in s["lines"]}
    return shipments if wanted <= held else None


def shipment_of(url: str, trade_id: str) -> dict[str, Any]:
    shipments: list[dict[str, Any]] = eventually(lambda: waiting_with(url, [trade_id]))
    [shipment] = shipments
    return shipment


def carrier(suggestion: dict[str, Any], shipment_id: str) -> str | None:
    """The plate a suggestion puts (any part of) a shipment on, if any."""
    for load in suggestion["loads"]:
        if any(part["shipment_id"] == shipment_id for part in load["parts"]):
            plate: str = load["plate"]
            return plate
    return None


def assign(url: str, plate: str, shipment_id: str, by: str = "yard-1") -> httpx.Response:
    return post(
        url, "/assignments", {"plate": plate, "shipment_ids": [shipment_id], "assigned_by": by}
    )


def free_bay(url: str) -> int:
    bay: int = next(b["bay"] for b in get(url, "/yard")["bays"] if b["plate"] is None)
    return bay


def move(url: str, plate: str, step: str, **body: Any) -> dict[str, Any]:
    response = post(url, f"/trucks/{plate}/{step}", {"by": "yard-1", **body})
    assert response.status_code == 200, response.text
    truck: dict[str, Any] = response.json()
    return truck


def send_off(url: str, plate: str) -> dict[str, Any]:
    """A truck with a load through a free bay, loaded, and out of the gate."""
    move(url, plate, "bay", bay=free_bay(url))
    move(url, plate, "loaded")
    return move(url, plate, "departure")


def test_trades_wait_as_one_shipment_per_merchant_destination_and_cold_chain(
    broker: Broker, hall: Hall
) -> None:
    dispatch = hall.url("dispatch")
    run = tag()
    lanzhou, xian = f"兰州-{run}", f"西安-{run}"

    # Given merchants buying for two destinations, some of it to travel cold
    orders = [
        Order("merchant-lanzhou", lanzhou, True),
        Order("merchant-lanzhou", lanzhou, True),
        Order("merchant-lanzhou", lanzhou, False),
        Order("merchant-lanzhou", xian, False),
        Order("merchant-xian", xian, False),
        Order("shop-online-01", lanzhou, False),
    ]
    trades = sell(broker, hall, orders)
    ids = [t.trade_id for t in trades]

    # Then dispatch waits them as one shipment per merchant, destination and cold-chain need
    shipments = eventually(lambda: waiting_with(dispatch, ids))
    grouped = {
        (s["merchant_id"], s["destination"], s["cold_chain"]): sorted(
            line["trade_id"] for line in s["lines"]
        )
        for s in shipments
    }
    assert grouped == {
        ("merchant-lanzhou", lanzhou, True): sorted(ids[:2]),
        ("merchant-lanzhou", lanzhou, False): [ids[2]],
        ("merchant-lanzhou", xian, False): [ids[3]],
        ("merchant-xian", xian, False): [ids[4]],
        ("shop-online-01", lanzhou, False): [ids[5]],
    }
    assert len({s["shipment_id"] for s in shipments}) == len(shipments) == 5
    cold = next(s for s in shipments if s["cold_chain"])
    assert (cold["weight_g"], cold["crates"]) == (2 * LOT_G, 2 * LOT_CRATES)
    lots = {t.trade_id: t.lot_id for t in trades}
    assert all(
        (line["lot_id"], line["farmer_id"]) == (lots[line["trade_id"]], "farmer-yard")
        for s in shipments
        for line in s["lines"]
    )
    ambient = {s["shipment_id"] for s in shipments if not s["cold_chain"]}

    # When only trucks that cannot keep the cold chain are in the yard for those destinations
    plain = check_in(dispatch, new_plate("甘A"), [lanzhou, xian])["plate"]
    too_cold = check_in(dispatch, new_plate("甘B"), [lanzhou, xian], setpoint_c="2.0")
    assert too_cold["refrigerated"] and not too_cold["cold_chain_ready"]

    # Then the suggestion leaves the cold-chain shipment behind and loads the rest
    suggestion = get(dispatch, "/suggestions")
    assert suggestion["current"]
    assert carrier(suggestion, cold["shipment_id"]) is None
    assert cold["shipment_id"] in {p["shipment_id"] for p in suggestion["left_behind"]}
    assert {carrier(suggestion, s) for s in ambient} <= {plain, too_cold["plate"]}
    assert None not in {carrier(suggestion, s) for s in ambient}

    # And staff cannot put it on either of them by hand
    for plate, code in [
        (plain, "cold_chain_required"),
        (too_cold["plate"], "setpoint_out_of_range"),
    ]:
        refused = assign(dispatch, plate, cold["shipment_id"])
        assert (refused.status_code, refused.json()["error"]) == (409, code), refused.text

    # When a reefer set to 8 °C arrives for Lanzhou
    reefer = check_in(dispatch, new_plate("甘H"), [lanzhou], setpoint_c="8.0")
    assert reefer["cold_chain_ready"] and reefer["setpoint_c"] == "8.0"

    # Then the suggestion puts the cold-chain shipment on it, and cold goods on no other truck
    suggestion = get(dispatch, "/suggestions")
    assert carrier(suggestion, cold["shipment_id"]) == reefer["plate"]
    ready = {t["plate"]: t["cold_chain_ready"] for t in get(dispatch, "/trucks")}
    assert all(
        ready[load["plate"]]
        for load in suggestion["loads"]
        for part in load["parts"]
        if part["cold_chain"]
    )

    # And accepting it for these trucks puts every shipment on the truck it suggested
    mine = [plain, too_cold["plate"], reefer["plate"]]
    accepted = post(
        dispatch,
        f"/suggestions/{suggestion['suggestion_id']}/accept",
        {"accepted_by": "yard-1", "plates": mine},
    )
    assert accepted.status_code == 200, accepted.text
    outcome = accepted.json()
    assert outcome["refused"] == []
    assert {a["shipment_id"]: a["plate"] for a in outcome["assigned"]} == {
        s["shipment_id"]: carrier(suggestion, s["shipment_id"]) for s in shipments
    }
    assert {a["decision"] for a in outcome["assigned"]} == {"suggested"}
    assert {a["suggestion_id"] for a in outcome["assigned"]} == {suggestion["suggestion_id"]}
    assert not any(
        set(ids) & {line["trade_id"] for line in s["lines"]} for s in get(dispatch, "/shipments")
    )


def race(requests: Sequence[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send each assignment to its instance at the same moment; the answers in the same order."""
    barrier = threading.Barrier(len(requests))

    def send(url: str, body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(timeout=30) as http:
            # A warm connection, so neither request spends its head start connecting.
            http.get(f"{url}/healthz")
            barrier.wait(timeout=20)
            return http.post(f"{url}/assignments", json=body)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [pool.submit(send, url, body) for url, body in requests]
        return [future.result(timeout=60) for future in futures]


def assigned_on_log(broker: Broker, trade_id: str) -> list[ShipmentAssigned]:
    return [
        m
        for _, m in read_topic(broker.bootstrap, DISPATCH_YARD)
        if isinstance(m, ShipmentAssigned) and trade_id in {line.trade_id for line in m.lines}
    ]


def holding(url: str, trade_id: str) -> list[dict[str, Any]]:
    """Every assignment an instance knows (taken back or not) that carries this trade."""
    return [
        a
        for a in get(url, "/assignments", all="true")
        if trade_id in {line["trade_id"] for line in a["lines"]}
    ]


def test_two_instances_racing_for_one_shipment_put_it_on_one_truck(
    broker: Broker, hall: Hall, second_dispatch: str
) -> None:
    run = tag()
    places = [f"武威{n}-{run}" for n in range(ROUNDS)]
    buyers = ["merchant-lanzhou", "merchant-xian", "merchant-chengdu", "shop-online-01"]
    trades = sell(
        broker,
        hall,
        [Order(buyers[n % len(buyers)], place, False) for n, place in enumerate(places)],
    )
    instances = (hall.url("dispatch"), second_dispatch)
    plates = (new_plate("甘C"), new_plate("甘D"))
    for plate in plates:
        check_in(instances[0], plate, places)

    # Given both instances have folded the trucks and the trades
    for url in instances:
        eventually(lambda url=url: waiting_with(url, [t.trade_id for t in trades]))
        eventually(lambda url=url: set(plates) <= {t["plate"] for t in get(url, "/trucks")})

    real_races = 0
    for n, trade in enumerate(trades):
        shipment = shipment_of(instances[0], trade.trade_id)
        by_trade = n % 2 == 1
        what = (
            {"trade_ids": [trade.trade_id]}
            if by_trade
            else {"shipment_ids": [shipment["shipment_id"]]}
        )

        # When each instance is asked at the same moment to put it on a different truck
        answers = race(
            [
                (url, {"plate": plate, **what, "assigned_by": f"yard-{k}"})
                for k, (url, plate) in enumerate(zip(instances, plates, strict=True))
            ]
        )

        # Then one request stands and the other is refused
        codes = sorted(a.status_code for a in answers)
        assert codes in ([201, 409], [201, 404]), [a.text for a in answers]
        won = next(k for k, a in enumerate(answers) if a.status_code == 201)
        refusal = answers[1 - won].json()
        on_log = assigned_on_log(broker, trade.trade_id)
        assert 1 <= len(on_log) <= 2
        if len(on_log) == 2:
            # Both decisions reached the log: the fold let the first stand, refused the second.
            real_races += 1
            assert refusal["error"] == "shipment_already_assigned", refusal
        else:
            # The loser's instance had already folded the winner, so it refused before publishing;
            # a shipment asked for by id is then no longer waiting at all.
            allowed = {"shipment_already_assigned"} | (set() if by_trade else {"unknown_shipment"})
            assert refusal["error"] in allowed, refusal
        [made] = answers[won].json()
        assert made["plate"] == plates[won] and made["shipment_id"] == shipment["shipment_id"]

        # And both instances show that one assignment, and only it
        for url in instances:
            [held] = eventually(lambda url=url, t=trade.trade_id: holding(url, t))
            assert (held["assignment_id"], held["plate"], held["standing"]) == (
                made["assignment_id"],
                plates[won],
                True,
            )

    assert real_races >= 1, f"no round of {ROUNDS} was a real race between the two instances"
    yards = [
        [a for a in get(url, "/assignments", all="true") if a["plate"] in plates]
        for url in instances
    ]
    assert yards[0] == yards[1]
    assert len(yards[0]) == ROUNDS
    print(f"\n{real_races} of {ROUNDS} rounds were decided by the log")


def yard_of(url: str, plates: Sequence[str], trade_ids: Sequence[str]) -> dict[str, Any]:
    """What the yard holds about these trucks and trades, without figures that age by the second."""
    trucks = [
        {k: v for k, v in t.items() if k != "dwell_s"}
        for t in get(url, "/trucks", departed="true")
        if t["plate"] in plates
    ]
    shipments = [
        {k: v for k, v in s.items() if k != "waiting_s"}
        for s in get(url, "/shipments")
        if set(trade_ids) & {line["trade_id"] for line in s["lines"]}
    ]
    assignments = [a for a in get(url, "/assignments", all="true") if a["plate"] in plates]
    bays = [b for b in get(url, "/yard")["bays"] if b["plate"] in plates]
    return {"trucks": trucks, "shipments": shipments, "assignments": assignments, "bays": bays}


def test_a_killed_dispatch_rebuilds_the_same_yard_and_a_departed_truck_stays_closed(
    broker: Broker, hall: Hall
) -> None:
    dispatch = hall.url("dispatch")
    run = tag()
    lanzhou, xian = f"兰州-{run}", f"西安-{run}"
    trades = sell(
        broker,
        hall,
        [
            Order("merchant-lanzhou", lanzhou, True),
            Order("merchant-xian", xian, False),
            Order("merchant-chengdu", xian, False),
            Order("shop-online-01", xian, False),
        ],
    )
    ids = [t.trade_id for t in trades]
    cold, first, second, third = (shipment_of(dispatch, t)["shipment_id"] for t in ids)

    # Given a day under way: a reefer at a bay, a truck gone, one with its load taken back
    reefer = check_in(dispatch, new_plate("甘H"), [lanzhou, xian], setpoint_c="7.5")["plate"]
    spare = check_in(dispatch, new_plate("甘E"), [xian])["plate"]
    gone = check_in(dispatch, new_plate("甘F"), [xian])["plate"]
    for plate, shipment in [(reefer, cold), (gone, first), (spare, second)]:
        response = assign(dispatch, plate, shipment)
        assert response.status_code == 201, response.text
    [taken] = get(dispatch, "/assignments", plate=spare)
    response = post(
        dispatch,
        f"/assignments/{taken['assignment_id']}/take-back",
        {"by": "yard-2", "reason": "司机改走武威"},
    )
    assert response.status_code == 200 and not response.json()["standing"], response.text
    assert send_off(dispatch, gone)["status"] == "departed"
    at_bay = move(dispatch, reefer, "bay", bay=free_bay(dispatch))
    plates = [reefer, spare, gone]
    before = yard_of(dispatch, plates, ids)
    assert [t["status"] for t in before["trucks"]] == ["loading", "waiting", "departed"]
    assert before["bays"] == [
        {"bay": at_bay["bay"], "plate": reefer, "visit_id": at_bay["visit_id"]}
    ]
    assert {s["shipment_id"] for s in before["shipments"]} == {second, third}

    # When dispatch is killed without warning and started again
    process = hall.services["dispatch"]
    process.signal(signal.SIGKILL)
    assert process.process is not None
    process.process.wait(timeout=10)
    took = hall.start(["dispatch"])
    print(f"\ndispatch rebuilt its yard and was ready again in {took:.1f}s")

    # Then it rebuilt the same yard from the log: nothing lost, nothing doubled
    after = yard_of(dispatch, plates, ids)
    assert after == before
    on_log = {
        str(m.event_id)
        for _, m in read_topic(broker.bootstrap, DISPATCH_YARD)
        if isinstance(m, ShipmentAssigned) and m.plate in plates
    }
    assert on_log == {a["assignment_id"] for a in after["assignments"]}
    standing = [
        line["trade_id"] for a in after["assignments"] if a["standing"] for line in a["lines"]
    ]
    assert sorted(standing) == sorted([ids[0], ids[1]])

    # And decisions after the restart stand as before
    response = assign(dispatch, spare, second)
    assert response.status_code == 201, response.text
    assert move(dispatch, reefer, "loaded")["status"] == "loaded"
    assert move(dispatch, reefer, "departure")["status"] == "departed"

    # But nothing changes on a truck that left
    [departed] = [a for a in before["assignments"] if a["plate"] == gone]
    attempts: list[tuple[str, dict[str, Any]]] = [
        (f"/trucks/{gone}/bay", {"bay": 1, "by": "yard-1"}),
        (f"/trucks/{gone}/loaded", {"by": "yard-1"}),
        (f"/trucks/{gone}/departure", {"by": "yard-1"}),
        ("/assignments", {"plate": gone, "shipment_ids": [third], "assigned_by": "yard-1"}),
        (
            f"/assignments/{departed['assignment_id']}/take-back",
            {"by": "yard-1", "reason": "装错了"},
        ),
    ]
    for path, body in attempts:
        refused = post(dispatch, path, body)
        assert (refused.status_code, refused.json()["error"]) == (409, "truck_departed"), path
    assert get(dispatch, f"/trucks/{gone}")["status"] == "departed"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an instance's metrics, by name and labels."""
    response = httpx.get(f"{url}/metrics", timeout=20)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


DWELL = "melon_dispatch_truck_dwell_seconds"
FILL = "melon_dispatch_departure_fill_ratio"


def test_a_departure_is_measured_and_the_truck_gauges_match_the_yard(
    broker: Broker, hall: Hall
) -> None:
    dispatch = hall.url("dispatch")
    place = f"张掖-{tag()}"
    [trade] = sell(broker, hall, [Order("merchant-chengdu", place, False)])
    shipment = shipment_of(dispatch, trade.trade_id)
    plate = check_in(dispatch, new_plate("甘G"), [place], capacity_kg="400")["plate"]
    response = assign(dispatch, plate, shipment["shipment_id"])
    assert response.status_code == 201, response.text
    before = scrape(dispatch)

    # When the truck is loaded and leaves
    send_off(dispatch, plate)

    # Then its dwell and its fill (100 of 400 kg) are observed once
    after = scrape(dispatch)
    truck = get(dispatch, f"/trucks/{plate}")
    assert truck["fill_ratio"] == 0.25
    for name in (DWELL, FILL):
        assert after[(f"{name}_count", ())] == before[(f"{name}_count", ())] + 1
    assert after[(f"{FILL}_sum", ())] - before[(f"{FILL}_sum", ())] == pytest.approx(0.25)
    dwell_s = (
        datetime.fromisoformat(truck["departed_at"])
        - datetime.fromisoformat(truck["checked_in_at"])
    ).total_seconds()
    assert after[(f"{DWELL}_sum", ())] - before[(f"{DWELL}_sum", ())] == pytest.approx(
        dwell_s, abs=1e-3
    )

    # And the truck gauges count the yard as the API lists it
    trucks = get(dispatch, "/trucks")
    for status in ("waiting", "assigned", "loading", "loaded"):
        listed = sum(1 for t in trucks if t["status"] == status)
        assert after[("melon_dispatch_trucks", (("status", status),))] == listed, status
    assert plate not in {t["plate"] for t in trucks}
