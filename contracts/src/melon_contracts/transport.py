"""Kafka transport shared by the services: publishing with the registry's rules, and consuming.

``KafkaPublisher`` is an idempotent producer (acks=all) that refuses to write a topic its service
does not own. ``TopicReader`` runs a consume loop in a thread: it decodes each record against the
topic's model, hands it to the handler, sends what it cannot use to the dead-letter topic with the
reason, and commits offsets only after the handler returned. ``InMemoryPublisher`` is the fake for
unit tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from melon_contracts.codec import UndecodableMessage, decode, decode_key, encode, encode_key
from melon_contracts.envelope import Message
from melon_contracts.events import DeadLettered
from melon_contracts.topics import Service, TopicSpec, by_name

log = logging.getLogger(__name__)


def configure_logging(level: str = "INFO") -> None:
    """One readable line per event; the Kafka client's connection chatter only when it matters."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class NotTheWriter(RuntimeError):
    """A service tried to write a topic the registry gives to another service."""


class PublishFailed(RuntimeError):
    """The broker did not acknowledge an event in time, so its effect is not durable."""


def _not_acknowledged(message: Message, key: str, cause: object) -> PublishFailed:
    kind = type(message).__name__
    return PublishFailed(f"{kind} for {key} was not acknowledged by the broker: {cause}")


class Reader(Protocol):
    """A background consumer as services use it; ``TopicReader`` is the real one."""

    caught_up: threading.Event
    failure: BaseException | None

    def start(self) -> None: ...

    def stop(self, timeout_s: float = ...) -> None: ...


def dead_letter(
    service: Service,
    spec: TopicSpec,
    partition: int,
    offset: int,
    key: str | None,
    value: bytes | None,
    reason: str,
) -> DeadLettered:
    """The dead letter for a record ``service`` could not use: the record, where it was, and why."""
    return DeadLettered(
        correlation_id=key or f"{spec.name}:{partition}:{offset}",
        source_topic=spec.name,
        partition=partition,
        offset=offset,
        key=key,
        payload=(value or b"").decode("utf-8", errors="replace")[:10_000],
        reason=reason,
        rejected_by=service,
    )


def not_ready(reader: Reader) -> str | None:
    """Why a reader cannot yet vouch for its service's state, or None when it can."""
    if reader.failure is not None:
        return f"failed: {type(reader.failure).__name__}: {reader.failure}"
    if not reader.caught_up.is_set():
        return "catching up with the topics"
    return None


class Publisher(Protocol):
    def publish(self, spec: TopicSpec, key: str, message: Message) -> None: ...


def check_writer(service: Service, spec: TopicSpec) -> None:
    if service not in spec.writers:
        raise NotTheWriter(f"{service} may not write {spec.name}; its writer is {spec.writer}")


class KafkaPublisher:
    """Publishes and waits for the broker's acknowledgement, so a 2xx means the event is durable."""

    def __init__(self, service: Service, bootstrap: str, timeout_s: float = 15.0) -> None:
        self._service = service
        self._timeout_s = timeout_s
        # The producer gives up on a record within the time publish() waits, so a PublishFailed
        # is final: the record will not land later behind the caller's back (it may have landed
        # already, with only the acknowledgement lost; readers dedupe by event id).
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"melon-{service}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            retries=2_147_483_647,
            request_timeout_ms=int(timeout_s * 1000 * 2 / 3),
            delivery_timeout_ms=int(timeout_s * 1000),
        )

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        check_writer(self._service, spec)
        try:
            future = self._producer.send(spec.name, key=encode_key(key), value=encode(message))
            future.get(timeout=self._timeout_s + 5)
        except KafkaError as exc:
            raise _not_acknowledged(message, key, exc) from exc

    def close(self) -> None:
        self._producer.close(timeout=5)


@dataclass
class InMemoryPublisher:
    """Records what would have been published; for unit tests."""

    service: Service
    sent: list[tuple[str, str, Message]] = field(default_factory=list)
    unreachable: bool = False
    """Act as a broker that never acknowledges: every publish fails as the real one would."""

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        check_writer(self.service, spec)
        if self.unreachable:
            raise _not_acknowledged(message, key, "no acknowledgement within the timeout")
        self.sent.append((spec.name, key, message))

    def on(self, spec: TopicSpec) -> list[Message]:
        return [message for name, _, message in self.sent if name == spec.name]


Handler = Callable[[TopicSpec, str | None, Message], None]


class TopicReader:
    """A consume loop in a background thread.

    With a ``group_id`` the reader shares work with other instances and resumes from committed
    offsets. Without one it reads every partition from the beginning: that is how a service
    rebuilds its state from the topics on start; ``caught_up`` is set once it has reached the
    end offsets it saw when it started. ``live=True`` (without a group) starts at the end instead,
    for streams where only what happens from now on matters, such as scale readings.
    ``consumer_factory`` makes the Kafka consumer; tests hand it a fake.
    """

    def __init__(
        self,
        service: Service,
        bootstrap: str,
        topics: Iterable[TopicSpec],
        handler: Handler,
        group_id: str | None = None,
        dead_letters: Publisher | None = None,
        live: bool = False,
        consumer_factory: Callable[..., Any] = KafkaConsumer,
    ) -> None:
        if live and group_id is not None:
            raise ValueError("a live reader reads every partition itself; it takes no group")
        self._live = live
        self._service = service
        self._bootstrap = bootstrap
        self._specs = {spec.name: spec for spec in topics}
        self._handler = handler
        self._group_id = group_id
        self._dead_letters = dead_letters
        self._new_consumer = consumer_factory
        self._stop = threading.Event()
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None
        self.name = "+".join(sorted(self._specs)) + (f"@{group_id}" if group_id else "")
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _consumer(self) -> KafkaConsumer:
        options: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap,
            "client_id": f"melon-{self._service}-reader",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
        }
        if self._group_id is not None:
            consumer = self._new_consumer(group_id=self._group_id, **options)
            consumer.subscribe(list(self._specs))
            return consumer
        consumer = self._new_consumer(**options)
        partitions = [
            TopicPartition(name, p)
            for name, spec in self._specs.items()
            for p in range(spec.partitions)
        ]
        consumer.assign(partitions)
        if self._live:
            consumer.seek_to_end(*partitions)
        else:
            consumer.seek_to_beginning(*partitions)
        return consumer

    def _run(self) -> None:
        try:
            consumer = self._consumer()
        except BaseException as exc:
            self.failure = exc
            log.exception("reader for %s could not start", sorted(self._specs))
            return
        try:
            replaying = self._group_id is None and not self._live
            targets = self._end_offsets(consumer) if replaying else {}
            if not targets:
                self.caught_up.set()
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    spec = self._specs[tp.topic]
                    for record in records:
                        self._deliver(spec, record)
                if batches and self._group_id is not None:
                    consumer.commit()
                if not self.caught_up.is_set() and self._reached(consumer, targets):
                    self.caught_up.set()
        except BaseException as exc:
            self.failure = exc
            log.exception("reader for %s stopped", sorted(self._specs))
        finally:
            consumer.close()

    @staticmethod
    def _end_offsets(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = consumer.end_offsets(list(consumer.assignment()))
        return {tp: offset for tp, offset in ends.items() if offset > 0}

    @staticmethod
    def _reached(consumer: KafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
        return all(consumer.position(tp) >= end for tp, end in targets.items())

    def _deliver(self, spec: TopicSpec, record: Any) -> None:
        key = decode_key(record.key)
        try:
            message = decode(spec, record.value)
        except UndecodableMessage as exc:
            self._reject(spec, record, key, str(exc))
            return
        try:
            self._handler(spec, key, message)
        except ValueError as exc:
            self._reject(spec, record, key, f"{type(exc).__name__}: {exc}")

    def _reject(self, spec: TopicSpec, record: Any, key: str | None, reason: str) -> None:
        log.warning("rejected %s[%s]@%s: %s", spec.name, record.partition, record.offset, reason)
        if self._dead_letters is None:
            return
        letter = dead_letter(
            self._service, spec, record.partition, record.offset, key, record.value, reason
        )
        self._dead_letters.publish(by_name(spec.dlq), letter.correlation_id, letter)
