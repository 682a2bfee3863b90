"""``book.commands`` read by offset, for the matcher's own account of what it applied.

The matcher does not trust its stream library to hand it every record once: it knows the last
offset it applied per partition and asks the log itself for any it was not given. ``Command`` is
one record as the matcher works with it, whether faust delivered it or the log was read for it;
``CommandLog`` the port; ``KafkaCommandLog`` reads the broker with a consumer of its own (no
group, no commits); ``InMemoryCommandLog`` is the fake for unit tests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, get_args

from melon_contracts.codec import UndecodableMessage, decode, encode_key
from melon_contracts.commands import BookCommand
from melon_contracts.reference import book_key
from melon_contracts.topics import BOOK_COMMANDS

log = logging.getLogger(__name__)
BOOK_COMMAND_TYPES: tuple[type, ...] = get_args(get_args(BookCommand)[0])


class Unusable(ValueError):
    """A record of ``book.commands`` no book can take; ``label`` counts it by kind."""

    def __init__(self, reason: str, label: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label


@dataclass(frozen=True)
class Command:
    """One record of ``book.commands``: where it is in the log and its bytes."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    topic: str = BOOK_COMMANDS.name

    @classmethod
    def of_event(cls, event: Any) -> Command:
        """The record faust delivered as ``event``."""
        message = event.message
        return cls(message.partition, message.offset, event.key, event.value, message.topic)

    def read(self) -> tuple[str, BookCommand]:
        """The book the record is for and its command; ``Unusable`` says why there is none."""
        try:
            message = decode(BOOK_COMMANDS, self.value)
        except UndecodableMessage as exc:
            raise Unusable(str(exc), "undecodable") from exc
        if not isinstance(message, BOOK_COMMAND_TYPES):
            raise Unusable(f"{type(message).__name__} is no book command", "not_a_book_command")
        command = cast(BookCommand, message)
        key = book_key(command.variety, command.grade)
        if self.key is not None and self.key != encode_key(key):
            raise Unusable(f"key does not name book {key}", "wrong_key")
        return key, command

    @property
    def message(self) -> Command:
        """Where the record is: what faust's table writes and the dead letters ask an event for."""
        return self


class CommandLog(Protocol):
    async def first_offset(self, partition: int) -> int:
        """The oldest offset the log still holds in ``partition``."""
        ...

    async def end_offset(self, partition: int) -> int:
        """The offset the next record written to ``partition`` will get."""
        ...

    async def read(self, partition: int, start: int, end: int) -> list[Command]:
        """The records of ``partition`` from ``start`` up to, not including, ``end``."""
        ...


class MissingCommands(RuntimeError):
    """The log did not give the records asked for within the time allowed."""


class KafkaCommandLog:
    """Reads ``book.commands`` by offset with an aiokafka consumer of its own.

    Made in the matcher's event loop on first use. It belongs to no consumer group, so reading
    never moves a partition and never commits anything.
    """

    def __init__(self, bootstrap: str, timeout_s: float = 30.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._consumer: Any = None

    async def _started(self) -> Any:
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                client_id="melon-pricing-command-log",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=int(self._timeout_s * 1000),
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    def _tp(self, partition: int) -> Any:
        from aiokafka import TopicPartition

        return TopicPartition(BOOK_COMMANDS.name, partition)

    async def first_offset(self, partition: int) -> int:
        consumer = await self._started()
        tp = self._tp(partition)
        offsets = await consumer.beginning_offsets([tp])
        return int(offsets[tp])

    async def end_offset(self, partition: int) -> int:
        consumer = await self._started()
        tp = self._tp(partition)
        offsets = await consumer.end_offsets([tp])
        return int(offsets[tp])

    async def read(self, partition: int, start: int, end: int) -> list[Command]:
        if end <= start:
            return []
        consumer = await self._started()
        tp = self._tp(partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        records: list[Command] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        # Records before the log's start are gone (retention); the consumer then starts at the
        # oldest it has, and the position says where reading stands either way.
        while await consumer.position(tp) < end:
            if loop.time() > deadline:
                raise MissingCommands(
                    f"{BOOK_COMMANDS.name}[{partition}] gave no records up to {end} "
                    f"within {self._timeout_s:.0f}s (read {len(records)} from {start})"
                )
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            for record in batches.get(tp, []):
                if start <= record.offset < end:
                    records.append(
                        Command(partition, record.offset, record.key, record.value, tp.topic)
                    )
        if records and records[0].offset > start:
            log.warning(
                "%s[%d] no longer holds offsets %d-%d (the log starts later)",
                BOOK_COMMANDS.name,
                partition,
                start,
                records[0].offset - 1,
            )
        return records

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


@dataclass
class InMemoryCommandLog:
    """A log held in memory: per partition, the records by offset; for unit tests."""

    records: dict[int, dict[int, Command]] = field(default_factory=dict)
    start: int = 0
    reads: list[tuple[int, int, int]] = field(default_factory=list)
    """Every ``read`` asked of the log: partition, start, end."""

    def append(self, command: Command) -> None:
        self.records.setdefault(command.partition, {})[command.offset] = command

    async def first_offset(self, partition: int) -> int:
        held = self.records.get(partition)
        return min(held) if held else self.start

    async def end_offset(self, partition: int) -> int:
        held = self.records.get(partition)
        return max(held) + 1 if held else self.start

    async def read(self, partition: int, start: int, end: int) -> list[Command]:
        self.reads.append((partition, start, end))
        held = self.records.get(partition, {})
        return [held[offset] for offset in sorted(held) if start <= offset < end]
