"""Where the matcher's results go: a port, its faust adapter and an in-memory fake."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from melon_contracts.codec import decode_key, encode, encode_key
from melon_contracts.envelope import Message
from melon_contracts.events import DeadLettered
from melon_contracts.topics import TopicSpec, by_name
from melon_contracts.transport import check_writer, dead_letter


class Outputs(Protocol):
    async def publish(self, spec: TopicSpec, key: str, message: Message) -> None: ...

    async def publish_all(self, messages: list[tuple[TopicSpec, str, Message]]) -> None: ...

    async def dead_letter(self, spec: TopicSpec, event: Any, reason: str) -> None: ...


def dead_letter_for(spec: TopicSpec, event: Any, reason: str) -> DeadLettered:
    """The dead letter for a faust event the matcher could not use."""
    raw = event.value if isinstance(event.value, bytes) else repr(event.value).encode()
    message = event.message
    key = decode_key(event.key)
    return dead_letter("pricing", spec, message.partition, message.offset, key, raw, reason)


class FaustOutputs:
    """Publishes through faust's producer at once (not attached to the offset commit) and waits
    for the broker's acknowledgement, so the book is written back only after its outputs."""

    def __init__(self, topics: dict[str, Any], dead_letter_topic: Callable[[TopicSpec], Any]):
        self._topics = topics
        self._dead_letter_topic = dead_letter_topic

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
        letter = dead_letter_for(spec, event, reason)
        await self.publish(by_name(spec.dlq), letter.correlation_id, letter)


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
