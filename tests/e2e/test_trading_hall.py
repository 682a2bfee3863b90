"""The trading hall through the real broker: a matcher killed mid-stream loses and doubles nothing.

Graded lots are put on ``lots.graded`` directly (standing in for the weigh stations, which have
their own tests); bids come through the pricing API with merchants' tokens. The proof is read
from the ``trades`` topic: no lot sold beyond its crates, no bid filled beyond its quantity, no
trade id with two different contents.
"""

from __future__ import annotations

import random
import signal
import uuid
from collections import defaultdict

import httpx
import pytest
from kafka import KafkaProducer

from melon_contracts.codec import encode
from melon_contracts.events import LotGraded, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import LOTS_GRADED, TRADES
from melon_devkit.hall import Hall
from melon_devkit.kafka import Broker
from melon_devkit.trace import read_topic

from .conftest import eventually, merchant

pytestmark = pytest.mark.e2e

LOTS = 16
BIDS = 24


def graded_lot(lot_id: str, crates: int) -> LotGraded:
    return LotGraded(
        correlation_id=lot_id,
        lot_id=lot_id,
        station_id="ws-1",
        ticket_no=1,
        farmer_id="farmer-kill",
        variety="ganmibao",
        crates=crates,
        net_g=crates * 10_000,
        grade=Grade.CLASS_II,
        profile_id="minqin-honeydew",
        profile_version=1,
        brix_mean=10.5,
        brix_samples=3,
        reason="test lot",
    )


def test_a_killed_matcher_resumes_without_losing_or_doubling_a_trade(
    broker: Broker, hall: Hall
) -> None:
    run = uuid.uuid4().hex[:6]
    rng = random.Random(7)
    lots = {f"K{run}-L{i}": rng.randint(5, 30) for i in range(LOTS)}
    bids = {f"K{run}-B{i}": rng.randint(50, 400) * 1000 for i in range(BIDS)}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    worker = hall.services["pricing-worker"]
    with httpx.Client(timeout=20) as http:
        # Given lots and bids streaming into the class II Ganmibao book
        for index, (lot_id, crates) in enumerate(lots.items()):
            producer.send(
                LOTS_GRADED.name, key=lot_id.encode(), value=encode(graded_lot(lot_id, crates))
            )
            for bid_id in list(bids)[index * 3 // 2 : (index + 1) * 3 // 2]:
                response = http.post(
                    f"{hall.url('pricing')}/bids",
                    headers=merchant("merchant-chengdu" if index % 2 else "merchant-xian"),
                    json={
                        "bid_id": bid_id,
                        "variety": "ganmibao",
                        "grade": "class_ii",
                        "price_yuan_per_kg": f"{3 + rng.randint(0, 9) / 10:.2f}",
                        "quantity_kg": str(bids[bid_id] // 1000),
                    },
                )
                assert response.status_code == 202, response.text
            producer.flush()
            if index == LOTS // 2:
                # When the matcher is killed without warning halfway and started again
                eventually(lambda: _mine(broker, run), timeout_s=60)
                worker.signal(signal.SIGKILL)
                assert worker.process is not None
                worker.process.wait(timeout=10)
                hall.start(["pricing-worker"])
        producer.close()

    # Then the trades settle, and the trades topic proves the market's promises
    trades = eventually(lambda: _settled(broker, run), timeout_s=90, every_s=2)
    by_id: dict[str, TradeExecuted] = {}
    for trade in trades:
        earlier = by_id.setdefault(trade.trade_id, trade)
        assert earlier.model_dump(exclude={"event_id", "occurred_at"}) == trade.model_dump(
            exclude={"event_id", "occurred_at"}
        ), f"trade id {trade.trade_id} carries two different trades"
    crates_sold: dict[str, int] = defaultdict(int)
    grams_bought: dict[str, int] = defaultdict(int)
    for trade in by_id.values():
        crates_sold[trade.lot_id] += trade.crates
        grams_bought[trade.bid_id] += trade.weight_g
    for lot_id, crates in crates_sold.items():
        assert crates <= lots[lot_id], f"lot {lot_id} sold {crates} of {lots[lot_id]} crates"
    for bid_id, grams in grams_bought.items():
        assert grams <= bids[bid_id], f"bid {bid_id} filled {grams} g of {bids[bid_id]} g"
    assert len(by_id) >= LOTS // 2  # the market did trade on both sides of the kill


def _mine(broker: Broker, run: str) -> list[TradeExecuted]:
    return [
        m
        for _, m in read_topic(broker.bootstrap, TRADES)
        if isinstance(m, TradeExecuted) and m.lot_id.startswith(f"K{run}-")
    ]


_last_count: dict[str, int] = {}


def _settled(broker: Broker, run: str) -> list[TradeExecuted] | None:
    """The trades of this run once two reads a few seconds apart see the same number."""
    trades = _mine(broker, run)
    previous = _last_count.get(run)
    _last_count[run] = len(trades)
    return trades if previous == len(trades) and trades else None
