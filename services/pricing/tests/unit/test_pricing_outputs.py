"""The matcher's faust outputs file a dead letter for any record, wait until the broker has it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka.errors import KafkaConnectionError

from melon_contracts.events import DeadLettered
from melon_contracts.topics import BOOK_COMMANDS, LOTS_GRADED, TopicSpec, by_name
from pricing.adapters.outputs import FaustOutputs


@dataclass
class FakeTopic:
    """Takes what faust's topic would send; the first ``failures`` sends find the broker away."""

    failures: int = 0
    sent: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, *, key: bytes, value: bytes, force: bool) -> asyncio.Future[None]:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("no broker")
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass(frozen=True)
class Where:
    partition: int
    offset: int


@dataclass(frozen=True)
class FaustEvent:
    """What faust hands an agent: key and value as bytes, the record's place in ``message``."""

    key: bytes | None
    value: bytes | None
    message: Where


@dataclass(frozen=True)
class Record:
    """A record as the matcher keeps it itself: its place beside its bytes."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def outputs_with(dlq: FakeTopic) -> FaustOutputs:
    return FaustOutputs({}, dead_letter_topic=lambda spec: dlq, retry_s=0.001)


def filed(dlq: FakeTopic, spec: TopicSpec) -> list[tuple[str, DeadLettered]]:
    adapter = by_name(spec.dlq).adapter
    letters = []
    for key, value in dlq.sent:
        letter = adapter.validate_json(value)
        assert isinstance(letter, DeadLettered)
        letters.append((key.decode(), letter))
    return letters


@pytest.mark.parametrize(
    ("key", "correlation_id"),
    [
        (b"xizhoumi.class_i", "xizhoumi.class_i"),
        (b"k" * 1000, "book.commands:3:17"),
        (b"\xff\xfe\x00", "book.commands:3:17"),
        (None, "book.commands:3:17"),
    ],
    ids=["book key", "1000 characters", "not UTF-8", "no key"],
)
def test_a_command_with_any_key_is_dead_lettered(key: bytes | None, correlation_id: str) -> None:
    dlq = FakeTopic()
    event = FaustEvent(key, b"{not json", Where(3, 17))

    asyncio.run(outputs_with(dlq).dead_letter(BOOK_COMMANDS, event, "invalid book.commands"))

    [(dlq_key, letter)] = filed(dlq, BOOK_COMMANDS)
    assert dlq_key == letter.correlation_id == correlation_id
    assert (letter.partition, letter.offset, letter.payload) == (3, 17, "{not json")
    assert letter.key_size_bytes == (None if key is None else len(key))


def test_a_record_without_a_value_is_dead_lettered_as_such() -> None:
    dlq = FakeTopic()
    event = FaustEvent(b"L-1", None, Where(0, 4))

    asyncio.run(outputs_with(dlq).dead_letter(LOTS_GRADED, event, "empty value on lots.graded"))

    [(_, letter)] = filed(dlq, LOTS_GRADED)
    assert letter.payload == "" and letter.value_size_bytes is None


def test_a_record_the_matcher_read_itself_is_dead_lettered_from_its_place() -> None:
    dlq = FakeTopic()

    asyncio.run(outputs_with(dlq).dead_letter(BOOK_COMMANDS, Record(5, 90, b"k", b"x"), "bad"))

    [(_, letter)] = filed(dlq, BOOK_COMMANDS)
    assert (letter.partition, letter.offset, letter.key, letter.payload) == (5, 90, "k", "x")


def test_a_dead_letter_the_broker_did_not_take_is_sent_again() -> None:
    dlq = FakeTopic(failures=3)
    event = FaustEvent(b"xizhoumi.class_i", b"{not json", Where(1, 2))

    asyncio.run(outputs_with(dlq).dead_letter(BOOK_COMMANDS, event, "invalid"))

    assert dlq.failures == 0
    [(_, letter)] = filed(dlq, BOOK_COMMANDS)
    assert letter.offset == 2
