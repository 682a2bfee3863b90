"""The topic reader's loop on a fake consumer: no record stops it, and none is lost.

A record the reader cannot use goes to the topic's dead-letter topic with the reason, whatever
its key or value; a handler that fails on one record has that record dead-lettered; a broker
that is away is waited for, and nothing is dead-lettered or skipped meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError

from melon_contracts.codec import encode, encode_key
from melon_contracts.envelope import Message
from melon_contracts.events import DeadLettered, TruckCheckedIn
from melon_contracts.topics import DISPATCH_YARD, TopicSpec, by_name
from melon_contracts.transport import (
    InMemoryPublisher,
    NotTheWriter,
    PublishFailed,
    TopicReader,
    dead_letter,
)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class FakeBroker:
    """Partitions as lists of records; consumers made by ``consumer`` read them."""

    logs: dict[TopicPartition, list[Record]] = field(default_factory=lambda: defaultdict(list))
    unreachable_for: int = 0
    """How many consumers to refuse before the broker answers."""
    failing_commits: int = 0
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, topic: str, key: bytes | None, value: bytes | None, p: int = 0) -> Record:
        with self.lock:
            log = self.logs[TopicPartition(topic, p)]
            record = Record(topic, p, len(log), key, value)
            log.append(record)
            return record

    def consumer(self, **options: Any) -> FakeConsumer:
        if self.unreachable_for:
            self.unreachable_for -= 1
            raise KafkaTimeoutError("no broker answered")
        return FakeConsumer(self)


class FakeConsumer:
    def __init__(self, broker: FakeBroker) -> None:
        self._broker = broker
        self._positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: list[str]) -> None:
        self.assign([TopicPartition(t, p) for t in topics for p in range(by_name(t).partitions)])

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._positions = dict.fromkeys(partitions, 0)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions[tp] = 0

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions[tp] = len(self._broker.logs[tp])

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        with self._broker.lock:
            return {tp: len(self._broker.logs[tp]) for tp in partitions}

    def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, list[Record]]:
        batches: dict[Any, list[Record]] = {}
        with self._broker.lock:
            for tp, at in self._positions.items():
                records = self._broker.logs[tp][at : at + max_records]
                if records:
                    batches[tp] = records
                    self._positions[tp] = at + len(records)
        if not batches:
            time.sleep(0.005)
        return batches

    def commit(self) -> None:
        if self._broker.failing_commits:
            self._broker.failing_commits -= 1
            raise CommitFailedError("the group rebalanced")
        self._broker.commits.append(dict(self._positions))

    def close(self) -> None:
        pass


class FlakyPublisher(InMemoryPublisher):
    """Acts as a broker that is away for the first ``failures`` publishes."""

    def __init__(self, service: Any, failures: int = 0) -> None:
        super().__init__(service)
        self.failures = failures

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        if self.failures:
            self.failures -= 1
            raise PublishFailed("no acknowledgement within the timeout")
        super().publish(spec, key, message)


def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the reader did not get there in time"
        time.sleep(0.005)


def check_in(plate: str = "甘H12345") -> TruckCheckedIn:
    return TruckCheckedIn(
        correlation_id=plate,
        plate=plate,
        driver="王师傅",
        capacity_g=5_000_000,
        refrigerated=False,
        checked_in_by="gate-1",
    )


@dataclass
class Handled:
    """A handler that keeps what it was given; ``fail`` decides whether it raises instead."""

    fail: Callable[[Message], BaseException | None] = lambda message: None
    seen: list[Message] = field(default_factory=list)
    calls: int = 0

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        self.calls += 1
        error = self.fail(message)
        if error is not None:
            raise error
        self.seen.append(message)


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def running() -> Iterator[list[TopicReader]]:
    readers: list[TopicReader] = []
    yield readers
    for reader in readers:
        reader.stop(timeout_s=5)


def reader_of(
    broker: FakeBroker,
    handler: Handled,
    running: list[TopicReader],
    dead_letters: InMemoryPublisher | None = None,
    **options: Any,
) -> TopicReader:
    reader = TopicReader(
        "dispatch",
        "fake:9092",
        [DISPATCH_YARD],
        handler,
        dead_letters=dead_letters,
        consumer_factory=broker.consumer,
        retry_s=0.01,
        **options,
    )
    reader.start()
    running.append(reader)
    return reader


def letters(publisher: InMemoryPublisher) -> list[DeadLettered]:
    found = [m for m in publisher.on(by_name(DISPATCH_YARD.dlq)) if isinstance(m, DeadLettered)]
    return found


def test_a_record_with_an_80_character_key_is_dead_lettered_and_the_reader_goes_on(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    # Given garbage keyed by 80 digits on the yard's log, then a check-in
    broker.append(DISPATCH_YARD.name, b"0" * 80, b"\x01garbage")
    truck = check_in()
    broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    handler, dlq = Handled(), InMemoryPublisher("dispatch")

    # When dispatch's reader replays the log
    reader = reader_of(broker, handler, running, dead_letters=dlq)

    # Then the garbage is on the dead-letter topic, and the check-in was folded after it
    until(lambda: reader.caught_up.is_set() or reader.failure)
    assert reader.failure is None
    assert handler.seen == [truck]
    [letter] = letters(dlq)
    assert letter.key == "0" * 80 and letter.offset == 0 and "Invalid JSON" in letter.reason


@pytest.mark.parametrize(
    "error",
    [KeyError("visit"), TypeError("unhashable"), RuntimeError("bug"), ValueError("refused")],
    ids=lambda e: type(e).__name__,
)
def test_a_handler_failing_on_one_record_has_it_dead_lettered_with_the_reason(
    broker: FakeBroker, running: list[TopicReader], error: Exception
) -> None:
    poison, fine = check_in("甘H00001"), check_in("甘H00002")
    for truck in (poison, fine):
        broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    handler = Handled(fail=lambda m: error if m == poison else None)
    dlq = InMemoryPublisher("dispatch")

    reader = reader_of(broker, handler, running, dead_letters=dlq)

    until(lambda: reader.caught_up.is_set() or reader.failure)
    assert reader.failure is None
    assert handler.seen == [fine]
    [letter] = letters(dlq)
    assert (
        letter.offset == 0
        and type(error).__name__ in letter.reason
        and str(error) in (letter.reason)
    )


@pytest.mark.parametrize(
    "outage",
    [PublishFailed("LotGraded for L-1 was not acknowledged"), KafkaConnectionError("gone")],
    ids=lambda e: type(e).__name__,
)
def test_a_handler_that_cannot_reach_the_broker_is_retried_not_dead_lettered(
    broker: FakeBroker, running: list[TopicReader], outage: Exception
) -> None:
    truck = check_in()
    broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    outages = [outage, outage, outage]
    handler = Handled(fail=lambda m: outages.pop() if outages else None)
    dlq = InMemoryPublisher("dispatch")

    reader = reader_of(broker, handler, running, dead_letters=dlq)

    until(lambda: handler.seen or reader.failure)
    assert reader.failure is None
    assert handler.seen == [truck] and handler.calls == 4
    assert letters(dlq) == []


def test_a_dead_letter_the_broker_did_not_take_is_sent_again(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    broker.append(DISPATCH_YARD.name, b"k", b"not json")
    truck = check_in()
    broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    handler, dlq = Handled(), FlakyPublisher("dispatch", failures=3)

    reader = reader_of(broker, handler, running, dead_letters=dlq)

    until(lambda: handler.seen or reader.failure)
    assert reader.failure is None
    assert [letter.offset for letter in letters(dlq)] == [0]
    assert dlq.failures == 0


def test_a_record_keyed_for_another_truck_is_dead_lettered(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    truck = check_in("甘H12345")
    broker.append(DISPATCH_YARD.name, encode_key("甘H99999"), encode(truck))
    broker.append(DISPATCH_YARD.name, encode_key("k" * 1000), encode(truck))
    handler, dlq = Handled(), InMemoryPublisher("dispatch")

    reader = reader_of(broker, handler, running, dead_letters=dlq)

    until(lambda: reader.caught_up.is_set() or reader.failure)
    assert handler.seen == []
    wrong, long = letters(dlq)
    assert "甘H99999" in wrong.reason and "甘H12345" in wrong.reason and "key" in wrong.reason
    assert long.key == "k" * 1000 and "key" in long.reason and len(long.reason) < 500


def test_a_reader_that_cannot_reach_the_broker_at_first_keeps_trying(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    broker.unreachable_for = 3
    truck = check_in()
    broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    handler = Handled()

    reader = reader_of(broker, handler, running)

    until(lambda: handler.seen or reader.failure)
    assert reader.failure is None and broker.unreachable_for == 0


def test_a_reader_stopped_while_waiting_for_the_broker_stops_without_committing_the_record(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    truck = check_in()
    broker.append(DISPATCH_YARD.name, encode_key(truck.plate), encode(truck))
    handler = Handled(fail=lambda m: PublishFailed("broker away"))
    reader = reader_of(broker, handler, running, group_id="melon-test")
    until(lambda: handler.calls >= 2)

    began = time.monotonic()
    reader.stop(timeout_s=5)

    assert time.monotonic() - began < 2
    assert not reader._thread.is_alive()
    assert reader.failure is None
    assert broker.commits == []


def test_a_commit_the_group_refused_does_not_stop_the_reader(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    broker.failing_commits = 1
    first, second = check_in("甘H00001"), check_in("甘H00002")
    broker.append(DISPATCH_YARD.name, encode_key(first.plate), encode(first))
    handler = Handled()
    reader = reader_of(broker, handler, running, group_id="melon-test")
    until(lambda: handler.seen or reader.failure)

    broker.append(DISPATCH_YARD.name, encode_key(second.plate), encode(second))

    until(lambda: broker.commits or reader.failure)
    assert reader.failure is None
    assert handler.seen == [first, second]


def test_a_replaying_reader_files_a_record_once_over_restarts(
    broker: FakeBroker, running: list[TopicReader]
) -> None:
    # Given garbage on the yard's log that dispatch filed on an earlier start
    filed = broker.append(DISPATCH_YARD.name, b"k1", b"garbage")
    earlier = dead_letter("dispatch", DISPATCH_YARD, 0, filed.offset, b"k1", b"garbage", "bad")
    broker.append(DISPATCH_YARD.dlq, encode_key(earlier.correlation_id), encode(earlier))
    # ... and a letter pricing filed for the next record, which says nothing of dispatch's
    other = broker.append(DISPATCH_YARD.name, b"k2", b"more garbage")
    theirs = dead_letter("pricing", DISPATCH_YARD, 0, other.offset, b"k2", b"x", "bad")
    broker.append(DISPATCH_YARD.dlq, encode_key(theirs.correlation_id), encode(theirs))
    handler, dlq = Handled(), InMemoryPublisher("dispatch")

    # When dispatch starts again and replays the log, and more garbage comes
    reader = reader_of(broker, handler, running, dead_letters=dlq)
    until(lambda: reader.caught_up.is_set() or reader.failure)
    broker.append(DISPATCH_YARD.name, b"k3", b"new garbage")

    # Then only the records dispatch had not filed yet are filed
    until(lambda: len(letters(dlq)) >= 2 or reader.failure)
    assert reader.failure is None
    assert [letter.offset for letter in letters(dlq)] == [1, 2]


def test_a_reader_may_only_dead_letter_where_its_service_reads() -> None:
    with pytest.raises(NotTheWriter):
        TopicReader(
            "ingest",
            "fake:9092",
            [DISPATCH_YARD],
            Handled(),
            dead_letters=InMemoryPublisher("ingest"),
            consumer_factory=FakeBroker().consumer,
        )
