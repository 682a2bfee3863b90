"""The topic registry: every Melon Hall topic is declared here once.

A topic has one writer (a service); each reader that may reject a message writes it to the topic's
dead-letter topic ``<name>.dlq`` with the reason. Event logs that services rebuild their state from
keep their records forever (``retention_ms=-1``); the board is compacted to the latest line of
each book.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from typing import Any, Literal

from pydantic import TypeAdapter

from melon_contracts.commands import BookCommand
from melon_contracts.envelope import Message
from melon_contracts.events import (
    BidUpdated,
    BoardUpdated,
    DeadLettered,
    LedgerRecord,
    LotGraded,
    LotWeighed,
    ScaleReading,
    TradeExecuted,
    YardEvent,
)
from melon_contracts.reference import book_key

Service = Literal["ingest", "pricing", "dispatch"]
KEEP_FOREVER = -1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    key_of: Callable[[Any], str]
    """The key a value is published under: readers refuse a record keyed otherwise."""
    value: Any
    """The pydantic model (or discriminated union) every value on the topic validates against."""
    partitions: int
    writer: Service
    readers: tuple[Service, ...] = ()
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int = KEEP_FOREVER
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)
    dead_letters_of: str | None = None
    """For a dead-letter topic: the topic whose rejected records it keeps."""

    @property
    def writers(self) -> tuple[Service, ...]:
        """The single writer, or for a dead-letter topic each reader of its source topic."""
        if self.dead_letters_of is None:
            return (self.writer,)
        return by_name(self.dead_letters_of).readers

    @cached_property
    def adapter(self) -> TypeAdapter[Message]:
        return TypeAdapter(self.value)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def config(self) -> dict[str, str]:
        settings = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.cleanup_policy == "delete":
            settings["retention.ms"] = str(self.retention_ms)
        return settings


ONE_DAY_MS = 24 * 60 * 60 * 1000


def _book_of_command(command: Any) -> str:
    return book_key(command.variety, command.grade)


SCALE_READINGS = TopicSpec(
    name="scale.readings",
    key="station id",
    key_of=attrgetter("station_id"),
    value=ScaleReading,
    partitions=3,
    writer="ingest",
    readers=("ingest",),
    retention_ms=ONE_DAY_MS,
    description="Every frame the weigh stations' scale indicators sent, decoded, per station. "
    "Kept a day: the weighings taken from them are in the ledger for good.",
)
INGEST_LEDGER = TopicSpec(
    name="ingest.ledger",
    key="record kind",
    key_of=attrgetter("kind"),
    value=LedgerRecord,
    partitions=1,
    writer="ingest",
    readers=("ingest",),
    description="The weigh stations' audit trail: weighings, corrections and changes of legal "
    "parameters, hash-chained in one partition so the order is total.",
)
LOTS_WEIGHED = TopicSpec(
    name="lots.weighed",
    key="lot id",
    key_of=attrgetter("lot_id"),
    value=LotWeighed,
    partitions=6,
    writer="ingest",
    readers=("ingest",),
    description="Every weighing taken at a weigh station, with its quality sample.",
)
LOTS_GRADED = TopicSpec(
    name="lots.graded",
    key="lot id",
    key_of=attrgetter("lot_id"),
    value=LotGraded,
    partitions=6,
    writer="ingest",
    readers=("ingest", "pricing"),
    description="Grades given to weighed lots, with the profile and measurements behind them.",
)
BOOK_COMMANDS = TopicSpec(
    name="book.commands",
    key="book key (variety.grade)",
    key_of=_book_of_command,
    value=BookCommand,
    partitions=6,
    writer="pricing",
    readers=("pricing",),
    description="Lots offered and bids placed or cancelled, in one order per book.",
)
TRADES = TopicSpec(
    name="trades",
    key="book key (variety.grade)",
    key_of=attrgetter("book"),
    value=TradeExecuted,
    partitions=6,
    writer="pricing",
    readers=("dispatch", "pricing"),
    description="Every sale of crates of a lot to a merchant.",
)
BOARD_UPDATES = TopicSpec(
    name="board.updates",
    key="book key (variety.grade)",
    key_of=attrgetter("book"),
    value=BoardUpdated,
    partitions=6,
    writer="pricing",
    readers=("pricing",),
    cleanup_policy="compact",
    description="The latest price-board line per book.",
)
BID_UPDATES = TopicSpec(
    name="bid.updates",
    key="bid id",
    key_of=attrgetter("bid_id"),
    value=BidUpdated,
    partitions=6,
    writer="pricing",
    readers=("pricing",),
    cleanup_policy="compact",
    description="The latest state of every merchant's bid: resting, filled, cancelled, expired.",
)
DISPATCH_YARD = TopicSpec(
    name="dispatch.yard",
    key="plate",
    key_of=attrgetter("plate"),
    value=YardEvent,
    partitions=1,
    writer="dispatch",
    readers=("dispatch",),
    description="Every decision in the truck yard: check-ins, assignments and take-backs, bays, "
    "loaded, departed. One partition, so every dispatch instance folds the same decisions in the "
    "same order and the log decides which of two racing decisions stands.",
)

TOPICS: tuple[TopicSpec, ...] = (
    SCALE_READINGS,
    INGEST_LEDGER,
    LOTS_WEIGHED,
    LOTS_GRADED,
    BOOK_COMMANDS,
    TRADES,
    BOARD_UPDATES,
    BID_UPDATES,
    DISPATCH_YARD,
)


def dead_letter_topics() -> tuple[TopicSpec, ...]:
    """One dead-letter topic per topic that has readers; each rejecting reader writes to it."""
    return tuple(
        TopicSpec(
            name=spec.dlq,
            key=f"{spec.key} of the rejected record, or its topic:partition:offset",
            key_of=attrgetter("correlation_id"),
            value=DeadLettered,
            partitions=1,
            writer=spec.readers[0],
            readers=(),
            description=f"Messages from {spec.name} that a reader rejected, with the reason.",
            dead_letters_of=spec.name,
        )
        for spec in TOPICS
        if spec.readers
    )


def all_topics() -> tuple[TopicSpec, ...]:
    return TOPICS + dead_letter_topics()


def by_name(name: str) -> TopicSpec:
    for spec in all_topics():
        if spec.name == name:
            return spec
    raise KeyError(f"no topic named {name!r} in the registry")
