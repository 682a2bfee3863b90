"""Where decoded readings go: a ``ReadingSink``.

``KafkaReadingSink`` writes them to ``scale.readings`` keyed by station, so each station's
readings stay in order on one partition. It never waits for the broker per record: a reading a
second from each of many stations must not stall behind one slow acknowledgement. Failures are
counted instead, and ``close()`` flushes what is still buffered. ``MemorySink`` is the fake for
tests and benchmarks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.throttle import Throttle
from melon_contracts.codec import encode, encode_key
from melon_contracts.events import ScaleReading
from melon_contracts.topics import SCALE_READINGS
from melon_contracts.transport import KAFKA_CLIENT_TIMING, check_writer, close_producer

log = logging.getLogger(__name__)


class ReadingSink(Protocol):
    """Takes readings from the gateway's event loop; must not block it."""

    def send(self, reading: ScaleReading) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps readings in memory (the last ``keep`` of them when given) and counts them all."""

    def __init__(self, keep: int | None = None) -> None:
        self.readings: deque[ScaleReading] = deque(maxlen=keep)
        self.count = 0
        self.closed = False

    def send(self, reading: ScaleReading) -> None:
        self.readings.append(reading)
        self.count += 1

    def close(self) -> None:
        self.closed = True

    def of(self, station: str) -> list[ScaleReading]:
        """The kept readings of one station, oldest first."""
        return [reading for reading in list(self.readings) if reading.station_id == station]


_STOP = object()

MAX_BLOCK_MS = 5_000
"""How long handing one reading to the producer may block (no metadata, a full buffer) before it
counts as failed."""
DELIVERY_TIMEOUT_MS = 30_000
"""A reading the broker has not acknowledged within this counts as failed: a weighing needs
current readings, so older ones are not worth holding, and the failure shows up in the metrics
within half a minute of the broker going away."""


class KafkaReadingSink:
    """Publishes readings to ``scale.readings`` with an idempotent producer (acks=all).

    ``send`` only queues the reading; a thread of its own hands it to the producer, whose
    ``send`` can block (on metadata, or when its buffer is full while the broker is away). A
    reading that finds the queue full is dropped and counted as a publish failure.

    A producer that lost a reading is replaced before the next one is sent: kafka-python's
    idempotent producer that expired a batch it had sent holds every later record unsent for
    good (see ``KafkaPublisher``), which left the stations offline after the broker came back.
    What the old producer still held is abandoned; it is older than the delivery timeout anyway.
    """

    def __init__(
        self,
        bootstrap: str,
        metrics: GatewayMetrics,
        *,
        queue_size: int = 100_000,
        close_timeout_s: float = 10.0,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_MS / 1000,
    ) -> None:
        check_writer("ingest", SCALE_READINGS)
        self._metrics = metrics
        self._log_throttle = Throttle(interval_s=1.0)
        self._close_timeout_s = close_timeout_s
        self._settings = dict(
            bootstrap_servers=bootstrap,
            client_id="melon-ingest-gateway",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            retries=2_147_483_647,
            max_block_ms=MAX_BLOCK_MS,
            request_timeout_ms=min(10_000, int(delivery_timeout_s * 1000 * 2 / 3)),
            delivery_timeout_ms=int(delivery_timeout_s * 1000),
            **KAFKA_CLIENT_TIMING,
        )
        self._producer = KafkaProducer(**self._settings)
        self._failed_producer: KafkaProducer | None = None
        self._queue: queue.Queue[ScaleReading | object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._pump, name="gateway-kafka", daemon=True)
        self._thread.start()
        self._closed = False

    def send(self, reading: ScaleReading) -> None:
        try:
            self._queue.put_nowait(reading)
        except queue.Full:
            self._failed(reading.station_id, "the send queue is full")

    def _pump(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, ScaleReading)
            station = item.station_id
            if self._failed_producer is self._producer:
                self._renew()
            producer = self._producer
            try:
                future = producer.send(
                    SCALE_READINGS.name, key=encode_key(station), value=encode(item)
                )
            except KafkaError as exc:
                self._failed(station, exc)
            else:
                future.add_errback(self._lost, producer, station)

    def _renew(self) -> None:
        old, self._producer = self._producer, KafkaProducer(**self._settings)
        log.warning("the producer lost readings; a new one publishes from now on")
        close_producer(old, timeout_s=0)

    def _lost(self, producer: KafkaProducer, station: str, cause: object) -> None:
        """A reading the broker did not take: count it and mark its producer for replacing."""
        self._failed_producer = producer
        self._failed(station, cause)

    def _failed(self, station: str, cause: object) -> None:
        self._metrics.publish_failures.labels(station).inc()
        held = self._log_throttle.ready()
        if held is not None:
            more = f" ({held} more failures since the last report)" if held else ""
            log.warning("%s: a reading was not published: %s%s", station, cause, more)

    def close(self) -> None:
        """Send what is queued, wait for the broker to take it, then close the producer.

        All of it within ``close_timeout_s``: a gateway stopping while the broker is away must
        still stop; what was not confirmed by then is logged as such.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self._close_timeout_s
        self._queue.put(_STOP)
        self._thread.join(timeout=self._close_timeout_s)
        try:
            self._producer.flush(timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaError as exc:
            log.warning("readings still buffered at shutdown were not confirmed: %s", exc)
        try:
            self._producer.close(timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaError as exc:
            log.warning("the producer closed with readings unconfirmed: %s", exc)
