"""Where the matcher's results go: a port, its faust adapter and an in-memory fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from melon_contracts.codec import encode, encode_key
from melon_contracts.envelope import Message
from melon_contracts.events import DeadLettered
from melon_contracts.topics import TopicSpec, by_name
from melon_contracts.transport import RETRY_MAX_S, RETRY_S, check_writer, dead_letter

log = logging.getLogger(__name__)


class Outputs(Protocol):
    async def publish(self, spec: TopicSpec, key: str, message: Message) -> None: ...

    async def publish_all(self, messages: list[tuple[TopicSpec, str, Message]]) -> None: ...

    async def dead_letter(self, spec: TopicSpec, event: Any, reason: str) -> None: ...


def dead_letter_for(spec: TopicSpec, record: Any, reason: str) -> DeadLettered:
    """The dead letter for a record the matcher could not use.

    ``record`` is a faust event (its place in ``record.message``) or a record that carries its
    partition and offset itself; either has the key and value as faust read them, raw bytes.
    """
    place = getattr(record, "message", record)
    value = record.value
    raw = value if value is None or isinstance(value, bytes) else repr(value).encode()
    key = record.key
    raw_key = key if key is None or isinstance(key, bytes) else str(key).encode()
    return dead_letter("pricing", spec, place.partition, place.offset, raw_key, raw, reason)


class FaustOutputs:
    """Publishes through faust's producer at once (not attached to the offset commit) and waits
    for the broker's acknowledgement, so the book is written back only after its outputs."""

    def __init__(
        self,
        topics: dict[str, Any],
        dead_letter_topic: Callable[[TopicSpec], Any],
        retry_s: float = RETRY_S,
    ):
        self._topics = topics
        self._dead_letter_topic = dead_letter_topic
        self._retry_s = retry_s

    def _topic(self, spec: TopicSpec) -> Any:
        if spec.name not in self._topics:
            self._topics[spec.name] = self._dead_letter_topic(spec)
        return self._topics[spec.name]

    async def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        check_writer("pricing", spec)
        pending = await self._topic(spec).send(
            key=encode_key(key), value=encode(message), force=True
        )
        await pending

    async def publish_all(self, messages: list[tuple[TopicSpec, str, Message]]) -> None:
        """Send every message, then wait for all acknowledgements (in order per partition)."""
        pending = []
        for spec, key, message in messages:
            check_writer("pricing", spec)
            pending.append(
                await self._topic(spec).send(key=encode_key(key), value=encode(message), force=True)
            )
        for future in pending:
            await future

    async def dead_letter(self, spec: TopicSpec, event: Any, reason: str) -> None:
        """File the letter, waiting for the broker as long as it takes: the matcher goes past the
        record only once its letter is on the dead-letter topic."""
        letter = dead_letter_for(spec, event, reason)
        delay = self._retry_s
        while True:
            try:
                await self.publish(by_name(spec.dlq), letter.correlation_id, letter)
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning(
                    "the broker did not take the dead letter of %s[%s]@%s (%r); again in %.1f s",
                    letter.source_topic,
                    letter.partition,
                    letter.offset,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(2 * delay, RETRY_MAX_S)


@dataclass
class RecordingOutputs:
    """Keeps what the matcher would publish; for tests."""

    sent: list[tuple[str, str, Message]] = field(default_factory=list)

    async def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        self.sent.append((spec.name, key, message))

    async def publish_all(self, messages: list[tuple[TopicSpec, str, Message]]) -> None:
        for spec, key, message in messages:
            await self.publish(spec, key, message)

    async def dead_letter(self, spec: TopicSpec, event: Any, reason: str) -> None:
        letter = dead_letter_for(spec, event, reason)
        self.sent.append((spec.dlq, letter.correlation_id, letter))

    def on(self, spec: TopicSpec) -> list[Message]:
        return [message for name, _, message in self.sent if name == spec.name]
