"""A service's publisher, and the scale gateway's, whose record the broker never answered
publishes again once the broker answers.

The kill soak found it: the broker killed while the pricing API's publish was in flight, down
longer than the publisher's delivery timeout, and every bid after it was refused 503 for good while
the API's health said ok. kafka-python's idempotent producer, having expired a batch it had already
sent, drops its producer id and never asks for another, so it holds every later record unsent.
Freezing the broker (SIGSTOP) makes that moment certain: the record is sent, unanswered, retried
and expired. The broker here is the test's own, so no other test's services see it frozen.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.sinks import KafkaReadingSink
from melon_contracts.admin import ensure_topics
from melon_contracts.commands import CancelBid
from melon_contracts.events import ScaleReading
from melon_contracts.reference import Grade, book_key
from melon_contracts.topics import BOOK_COMMANDS, SCALE_READINGS
from melon_contracts.transport import KafkaPublisher, PublishFailed
from melon_devkit.kafka import Broker, free_port
from melon_devkit.trace import read_topic

from .conftest import eventually

pytestmark = pytest.mark.e2e

TIMEOUT_S = 3.0
"""The publisher's delivery timeout, short so that the frozen broker outlasts it quickly."""
BOOK = book_key("xizhoumi", Grade.CLASS_I)


@pytest.fixture(scope="module")
def frozen_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(
        home=tmp_path_factory.mktemp("kafka-frozen"), port=free_port(), controller_port=free_port()
    )
    broker.start()
    ensure_topics(broker.bootstrap)
    try:
        yield broker
    finally:
        pid = broker.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        broker.stop()


def cancel(run: str, number: int) -> CancelBid:
    bid_id = f"PO-{run}-{number}"
    return CancelBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="merchant-outage",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
    )


def test_a_publisher_whose_sent_record_expired_publishes_again_once_the_broker_answers(
    frozen_broker: Broker,
) -> None:
    run = uuid.uuid4().hex[:6]
    publisher = KafkaPublisher("pricing", frozen_broker.bootstrap, timeout_s=TIMEOUT_S)
    try:
        publisher.publish(BOOK_COMMANDS, BOOK, cancel(run, 0))
        pid = frozen_broker.pid()
        assert pid is not None

        # When the broker stops answering while a record is on its way, until the record expires
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(PublishFailed):
                publisher.publish(BOOK_COMMANDS, BOOK, cancel(run, 1))
        finally:
            os.kill(pid, signal.SIGCONT)

        # Then, once it answers again, the publisher's records are acknowledged again
        sent: list[str] = []

        def published() -> bool:
            command = cancel(run, 2 + len(sent))
            sent.append(command.bid_id)
            try:
                publisher.publish(BOOK_COMMANDS, BOOK, command)
            except PublishFailed:
                return False
            return True

        eventually(published, timeout_s=40, every_s=0.5)
    finally:
        publisher.close()
    on_topic = {m.correlation_id for _, m in read_topic(frozen_broker.bootstrap, BOOK_COMMANDS)}
    assert f"PO-{run}-0" in on_topic and sent[-1] in on_topic


def reading(run: str, number: int) -> ScaleReading:
    return ScaleReading(
        correlation_id="ws-po",
        station_id="ws-po",
        reading_id=f"ws-po:{run}:{number}",
        protocol="mt-sics",
        value_g=464_000,
        indicator_stable=True,
        raw="S S     464.0 kg",
    )


def test_the_scale_gateway_publishes_readings_again_once_the_broker_answers(
    frozen_broker: Broker,
) -> None:
    run = uuid.uuid4().hex[:6]
    metrics = GatewayMetrics(CollectorRegistry())
    sink = KafkaReadingSink(frozen_broker.bootstrap, metrics, delivery_timeout_s=TIMEOUT_S)
    sent = 0

    def send() -> str:
        nonlocal sent
        sent += 1
        sink.send(reading(run, sent))
        return f"ws-po:{run}:{sent}"

    def on_topic() -> set[str]:
        return {
            m.reading_id
            for _, m in read_topic(frozen_broker.bootstrap, SCALE_READINGS)
            if isinstance(m, ScaleReading)
        }

    try:
        first = send()
        eventually(lambda: first in on_topic(), timeout_s=20)
        pid = frozen_broker.pid()
        assert pid is not None

        # When the broker stops answering while readings are on their way, until they expire
        os.kill(pid, signal.SIGSTOP)
        try:
            send()
            eventually(lambda: metrics.value("publish_failures_total", station="ws-po") > 0)
        finally:
            os.kill(pid, signal.SIGCONT)

        # Then, once it answers again, the gateway's readings reach the topic again
        def relayed() -> bool:
            latest = send()
            return latest in on_topic()

        eventually(relayed, timeout_s=40, every_s=1.0)
    finally:
        sink.close()
