"""Kafka transport shared by the services: publishing with the registry's rules, and consuming.

``KafkaPublisher`` is an idempotent producer (acks=all) that refuses to write a topic its service
does not own. ``TopicReader`` runs a consume loop in a thread: it decodes each record against the
topic's model, checks its key, hands it to the handler, sends what it cannot use to the
dead-letter topic with the reason, and commits offsets only after the handler returned. No record
stops it: one the handler fails on is dead-lettered; a broker that is away is waited for.
``InMemoryPublisher`` is the fake for unit tests.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, RetriableError

from melon_contracts.codec import UndecodableMessage, decode, decode_key, encode, encode_key
from melon_contracts.envelope import CORRELATION_ID_MAX_CHARS, Message
from melon_contracts.events import (
    DEAD_LETTER_KEY_CHARS,
    DEAD_LETTER_PAYLOAD_CHARS,
    DEAD_LETTER_REASON_CHARS,
    DeadLettered,
)
from melon_contracts.topics import Service, TopicSpec, by_name

log = logging.getLogger(__name__)

KAFKA_CLIENT_TIMING: dict[str, int] = {
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 1000,
    "retry_backoff_ms": 100,
}
"""How every kafka-python client of the hall retries a lost connection: at most a second between
attempts. kafka-python's default grows to 30 s, which kept writes failing for half a minute
after the broker came back."""


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


DEAD_LETTER_NAMESPACE = uuid.UUID("5d1e4c0a-7a43-4f57-9b0e-6d656c6f6e64")
"""A dead letter's event id is uuid5 of ``<service>:<topic>:<partition>:<offset>`` in this."""


def dead_letter(
    service: Service,
    spec: TopicSpec,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
) -> DeadLettered:
    """The dead letter for a record ``service`` could not use: the record, where it was, and why.

    Any record gives a valid letter: a key of any length or bytes, no value, a value at the
    broker's size limit. Key and value are shown as UTF-8 (with U+FFFD for bytes that are not)
    from their start, as much as ``DeadLettered`` keeps, beside their sizes.
    """
    place = f"{spec.name}:{partition}:{offset}"
    return DeadLettered(
        event_id=uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{service}:{place}"),
        correlation_id=_correlation_id(key) or place,
        source_topic=spec.name,
        partition=partition,
        offset=offset,
        key=None if key is None else _shown(key, DEAD_LETTER_KEY_CHARS),
        key_size_bytes=None if key is None else len(key),
        payload=_shown(value or b"", DEAD_LETTER_PAYLOAD_CHARS),
        value_size_bytes=None if value is None else len(value),
        reason=_cut(reason, DEAD_LETTER_REASON_CHARS),
        rejected_by=service,
    )


def _correlation_id(key: bytes | None) -> str | None:
    """The key, when it can name the letter: 1 to 64 characters of UTF-8."""
    if not key or len(key) > 4 * CORRELATION_ID_MAX_CHARS:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if len(text) <= CORRELATION_ID_MAX_CHARS else None


def _shown(data: bytes, chars: int) -> str:
    # A character takes at most four bytes, so a huge value is not decoded whole to show its start.
    return data[: 4 * chars].decode("utf-8", errors="replace")[:chars]


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _brief(key: str, chars: int = 80) -> str:
    """A key as a reason or a log line quotes it: a long one by its start and its length."""
    if len(key) <= chars:
        return repr(key)
    return f"{key[:chars]!r}... ({len(key)} characters)"


def wrong_key(spec: TopicSpec, key: str, expected: str) -> str:
    """Why a record keyed ``key`` is refused where its value says ``expected``."""
    return f"wrong key: {_brief(key)} does not name the {spec.key} {expected!r}"


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
        writers = " or ".join(spec.writers)
        raise NotTheWriter(f"{service} may not write {spec.name}; only {writers} may")


class KafkaPublisher:
    """Publishes and waits for the broker's acknowledgement, so a 2xx means the event is durable.

    A producer that failed a publish is closed at once and the next publish starts a new one.
    kafka-python's idempotent producer (3.0) that expired a batch it had already sent drops its
    producer id and never asks for another: it would hold every later record, unsent and never
    expired, while the broker answers again. Closing it abandons what it still held, so a failed
    publish stays final.
    """

    def __init__(self, service: Service, bootstrap: str, timeout_s: float = 15.0) -> None:
        self._service = service
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = self._new_producer()

    def _new_producer(self) -> KafkaProducer:
        # The producer gives up on a record within the time publish() waits, so a PublishFailed
        # is final: the record will not land later behind the caller's back (it may have landed
        # already, with only the acknowledgement lost; readers dedupe by event id).
        return KafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"melon-{self._service}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            retries=2_147_483_647,
            request_timeout_ms=int(self._timeout_s * 1000 * 2 / 3),
            delivery_timeout_ms=int(self._timeout_s * 1000),
            **KAFKA_CLIENT_TIMING,
        )

    def _current(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = self._new_producer()
            return self._producer

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        check_writer(self._service, spec)
        producer: KafkaProducer | None = None
        try:
            producer = self._current()
            future = producer.send(spec.name, key=encode_key(key), value=encode(message))
            future.get(timeout=self._timeout_s + 5)
        except KafkaError as exc:
            if producer is not None:
                self._retire(producer)
            raise _not_acknowledged(message, key, exc) from exc

    def _retire(self, producer: KafkaProducer) -> None:
        """Close a producer that failed a publish, unless another thread already did."""
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
        close_producer(producer, timeout_s=0)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, timeout_s=5)


def close_producer(producer: KafkaProducer, timeout_s: float) -> None:
    """Close a producer, abandoning what it has not sent within ``timeout_s``.

    Also the way to retire an idempotent producer that expired a batch (see ``KafkaPublisher``).
    """
    try:
        producer.close(timeout=timeout_s)
    except KafkaError:
        # kafka-python flushes before it closes and raises when the flush times out, leaving the
        # I/O thread running with what it holds: end the thread without sending it.
        producer._sender.force_close()
        producer._sender.join(timeout=5)
        try:
            producer.close(timeout=0)
        except KafkaError as exc:
            log.warning("a Kafka producer did not close cleanly: %s", exc)


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


RETRY_S = 0.5
RETRY_MAX_S = 10.0
"""Waits between attempts to reach the broker: doubling from ``RETRY_S`` up to ``RETRY_MAX_S``."""

BrokerAway = (PublishFailed, KafkaError)
"""What a handler raises when the broker did not take its output: the record is tried again."""


class _Stopped(Exception):
    """The reader was stopped while it waited for the broker; the record stays unacknowledged."""


class TopicReader:
    """A consume loop in a background thread.

    With a ``group_id`` the reader shares work with other instances and resumes from committed
    offsets. Without one it reads every partition from the beginning: that is how a service
    rebuilds its state from the topics on start; ``caught_up`` is set once it has reached the
    end offsets it saw when it started. ``live=True`` (without a group) starts at the end instead,
    for streams where only what happens from now on matters, such as scale readings.
    ``consumer_factory`` makes the Kafka consumer; tests hand it a fake.

    A record it cannot decode, or keyed other than the registry says, goes to the dead-letter
    topic, and so does one the handler raises on, with the exception as the reason. A handler
    that raises ``PublishFailed`` or a ``KafkaError`` could not reach the broker: the record is
    handed to it again after a pause (``retry_s``, doubling), as is a dead letter the broker did
    not take, until it is through or the reader is stopped; nothing is skipped. A reader that
    replays its topics files a record's dead letter once: on start it reads which records its
    service has already filed.
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
        retry_s: float = RETRY_S,
    ) -> None:
        if live and group_id is not None:
            raise ValueError("a live reader reads every partition itself; it takes no group")
        self._live = live
        self._service = service
        self._bootstrap = bootstrap
        self._specs = {spec.name: spec for spec in topics}
        if dead_letters is not None:
            for spec in self._specs.values():
                check_writer(service, by_name(spec.dlq))
        self._handler = handler
        self._group_id = group_id
        self._dead_letters = dead_letters
        self._new_consumer = consumer_factory
        self._retry_s = retry_s
        self._filed: set[tuple[str, int, int]] = set()
        """Records (topic, partition, offset) whose letter this service filed on an earlier run."""
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

    @property
    def _replaying(self) -> bool:
        return self._group_id is None and not self._live

    def _options(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self._bootstrap,
            **KAFKA_CLIENT_TIMING,
            "client_id": f"melon-{self._service}-reader",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
        }

    def _consumer(self) -> KafkaConsumer:
        options = self._options()
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
            if self._replaying and self._dead_letters is not None:
                self._filed = self._until_through("reading its dead letters", self._filed_before)
            consumer = self._until_through("connecting", self._consumer, RetriableError)
        except _Stopped:
            return
        except BaseException as exc:
            self.failure = exc
            log.exception("reader for %s could not start", sorted(self._specs))
            return
        try:
            targets = self._end_offsets(consumer) if self._replaying else {}
            if not targets:
                self.caught_up.set()
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    spec = self._specs[tp.topic]
                    for record in records:
                        self._deliver(spec, record)
                if batches and self._group_id is not None:
                    self._commit(consumer)
                if not self.caught_up.is_set() and self._reached(consumer, targets):
                    self.caught_up.set()
        except _Stopped:
            log.info("reader for %s stopped while waiting for the broker", sorted(self._specs))
        except BaseException as exc:
            self.failure = exc
            log.exception("reader for %s stopped", sorted(self._specs))
        finally:
            consumer.close()

    def _until_through(
        self,
        what: str,
        attempt: Callable[[], Any],
        away: type[BaseException] | tuple[type[BaseException], ...] = BrokerAway,
    ) -> Any:
        """``attempt()`` again and again while the broker is away; ``_Stopped`` on stop."""
        delay = self._retry_s
        while True:
            try:
                return attempt()
            except away as exc:
                log.warning(
                    "reader for %s: broker away while %s (%s); trying again in %.1f s",
                    sorted(self._specs),
                    what,
                    exc,
                    delay,
                )
            if self._stop.wait(delay):
                raise _Stopped
            delay = min(2 * delay, RETRY_MAX_S)

    def _commit(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.commit()
        except KafkaError as exc:
            # The group took the partitions elsewhere (or the broker is away): whoever reads them
            # next gets these records again, and the handlers take a record twice as once.
            log.warning("reader for %s could not commit: %s", sorted(self._specs), exc)

    def _filed_before(self) -> set[tuple[str, int, int]]:
        """Where the records are whose dead letters this service has already filed."""
        dlqs = [by_name(spec.dlq) for spec in self._specs.values()]
        partitions = [TopicPartition(dlq.name, p) for dlq in dlqs for p in range(dlq.partitions)]
        consumer = self._new_consumer(**self._options())
        filed: set[tuple[str, int, int]] = set()
        try:
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            while any(consumer.position(tp) < end for tp, end in ends.items()):
                if self._stop.is_set():
                    raise _Stopped
                for records in consumer.poll(timeout_ms=200, max_records=500).values():
                    for record in records:
                        try:
                            letter = decode(by_name(record.topic), record.value)
                        except UndecodableMessage:
                            continue
                        if isinstance(letter, DeadLettered) and letter.rejected_by == self._service:
                            filed.add((letter.source_topic, letter.partition, letter.offset))
        finally:
            consumer.close()
        return filed

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
            self._reject(spec, record, str(exc))
            return
        expected = spec.key_of(message)
        if key is not None and key != expected:
            self._reject(spec, record, wrong_key(spec, key, expected))
            return
        delay = self._retry_s
        while True:
            try:
                self._handler(spec, key, message)
                return
            except BrokerAway as exc:
                log.warning(
                    "%s[%s]@%s: the broker did not take the handler's output (%s); "
                    "handling it again in %.1f s",
                    spec.name,
                    record.partition,
                    record.offset,
                    exc,
                    delay,
                )
            except ValueError as exc:
                self._reject(spec, record, f"{type(exc).__name__}: {exc}")
                return
            except Exception as exc:
                log.exception("the handler failed on %s[%s]@%s", *_place(spec, record))
                self._reject(spec, record, f"unexpected {type(exc).__name__}: {exc}")
                return
            if self._stop.wait(delay):
                raise _Stopped
            delay = min(2 * delay, RETRY_MAX_S)

    def _reject(self, spec: TopicSpec, record: Any, reason: str) -> None:
        log.warning("rejected %s[%s]@%s: %s", *_place(spec, record), reason)
        if self._dead_letters is None:
            return
        if (spec.name, record.partition, record.offset) in self._filed:
            return  # filed on an earlier run of this service
        letter = dead_letter(
            self._service, spec, record.partition, record.offset, record.key, record.value, reason
        )
        dead_letters = self._dead_letters
        self._until_through(
            f"filing the dead letter of {spec.name}[{record.partition}]@{record.offset}",
            lambda: dead_letters.publish(by_name(spec.dlq), letter.correlation_id, letter),
        )


def _place(spec: TopicSpec, record: Any) -> tuple[str, int, int]:
    return spec.name, record.partition, record.offset
