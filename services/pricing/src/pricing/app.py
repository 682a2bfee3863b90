"""The matcher worker: a faust-streaming app that owns the order books.

Two agents:
- ``lot_intake`` turns each graded lot into an ``OfferLot`` command on ``book.commands`` keyed by
  its book, so a book's lots and bids share one ordered stream;
- ``matcher`` applies ``book.commands`` to the books kept in the changelog-backed ``books`` table
  and publishes trades, bid states and board lines.

Delivery: outputs are published and acknowledged before the book is written back, so a crash
either replays a command whose trades were not yet written to the table (same deterministic trade
ids again, which readers dedupe) or skips one whose effect is already complete.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import faust
import faust.streams as faust_streams
from aiokafka.errors import KafkaError

from melon_contracts.admin import BOOK_RECORD_MAX_BYTES
from melon_contracts.codec import UndecodableMessage, decode, encode_key
from melon_contracts.commands import (
    AmendBid,
    BookCommand,
    CancelBid,
    OfferLot,
    PlaceBid,
    SetLotReserve,
    WithdrawLot,
)
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded
from melon_contracts.reference import book_key
from melon_contracts.topics import (
    BID_UPDATES,
    BOARD_UPDATES,
    BOOK_COMMANDS,
    LOTS_GRADED,
    TRADES,
    TopicSpec,
)
from pricing import metrics
from pricing.adapters.outputs import FaustOutputs, Outputs
from pricing.adapters.translate import bid_events, board_event, trade_events
from pricing.domain.book import Book
from pricing.domain.market import Outcome, apply
from pricing.settings import Settings

log = logging.getLogger(__name__)
settings = Settings()
BOOK_COMMAND_TYPES = (OfferLot, PlaceBid, AmendBid, CancelBid, WithdrawLot, SetLotReserve)
MATCH_BATCH = settings.match_batch
MATCH_WITHIN_S = settings.match_within_ms / 1000
PUBLISH_RETRY_S = 0.5
PUBLISH_RETRY_MAX_S = 10.0

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    store="memory://",
    datadir=settings.worker_data_dir,
    topic_partitions=BOOK_COMMANDS.partitions,
    topic_replication_factor=1,
    topic_allow_declare=True,  # faust creates only its own internal topics (changelogs)
    producer_acks=-1,
    web_enabled=False,
    web_host="127.0.0.1",
    consumer_auto_offset_reset="earliest",
    # A worker that died holds its partitions until the broker gives up on it; 60 s by default,
    # which is a minute without matching after a crash. 10 s, with a heartbeat every 2 s.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    # A book is one table record; a busy book passes faust's 1 MB default (about 4500 bids).
    producer_max_request_size=BOOK_RECORD_MAX_BYTES,
)


def raw_topic(spec: TopicSpec) -> Any:
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )


lots_graded = raw_topic(LOTS_GRADED)
book_commands = raw_topic(BOOK_COMMANDS)
outputs: Outputs = FaustOutputs(
    {spec.name: raw_topic(spec) for spec in (BOOK_COMMANDS, TRADES, BOARD_UPDATES, BID_UPDATES)},
    dead_letter_topic=raw_topic,
)

books = app.Table(
    "books",
    default=None,
    partitions=BOOK_COMMANDS.partitions,
)


@app.agent(lots_graded)
async def lot_intake(stream: Any) -> None:
    async for event in stream.events():
        try:
            graded = decode(LOTS_GRADED, event.value)
        except UndecodableMessage as exc:
            await outputs.dead_letter(LOTS_GRADED, event, str(exc))
            continue
        if isinstance(graded, LotGraded):
            key = book_key(graded.variety, graded.grade)
            await outputs.publish(BOOK_COMMANDS, key, offer(graded))


def offer(graded: LotGraded) -> OfferLot:
    return OfferLot(
        correlation_id=graded.lot_id,
        lot_id=graded.lot_id,
        farmer_id=graded.farmer_id,
        variety=graded.variety,
        grade=graded.grade,
        crates=graded.crates,
        net_g=graded.net_g,
        reserve_fen_per_kg=settings.reserve_fen_per_kg[graded.grade],
    )


@app.agent(book_commands)
async def matcher(stream: Any) -> None:
    # Events are acknowledged (their offsets may be committed) once the batch is done.
    async for events in stream.take_events(MATCH_BATCH, within=MATCH_WITHIN_S):
        await match_batch(list(events))


class BookBroken(Exception):
    """A book raised where it should have refused: its in-memory copy may be half changed."""

    def __init__(self, key: str, cause: Exception) -> None:
        super().__init__(f"book {key} refused: {cause!r}")
        self.key = key


@dataclass
class _Batch:
    """The commands of one take, applied in memory: what to publish, what to write back."""

    books: dict[str, tuple[int | None, Book | None, bool]] = field(default_factory=dict)
    """Per book: the table version it was read at, the book now, changed in this batch."""
    sources: dict[str, Any] = field(default_factory=dict)
    """Per book: an event of its commands, whose partition its table record belongs to."""
    messages: list[tuple[TopicSpec, str, Message]] = field(default_factory=list)
    dead: list[tuple[Any, str, str]] = field(default_factory=list)
    """Events to dead-letter: the event, why, and the ``REJECTED`` label."""
    applied: list[tuple[str, BookCommand, Outcome]] = field(default_factory=list)
    """Each command applied, with its book's key and what it did; counted once the batch
    stands, so a batch run again command by command is not counted twice."""


async def match_batch(events: list[Any]) -> None:
    """Apply a batch of commands in order, publish all their outputs and wait for every
    acknowledgement at once, then write the books back.

    One round trip to the broker per batch instead of per command; a crash anywhere before the
    write-back replays the batch with the same deterministic ids, as for a single command.
    If a book raises, nothing of the batch has left the process: it is run again one command
    at a time from the table, so only the command at fault is dead-lettered.
    """
    try:
        batch = _plan(events)
    except BookBroken as broken:
        if len(events) > 1:
            for event in events:
                await match_batch([event])
            return
        metrics.REJECTED.labels("book_refused").inc()
        await outputs.dead_letter(BOOK_COMMANDS, events[0], str(broken))
        return
    for event, reason, label in batch.dead:
        metrics.REJECTED.labels(label).inc()
        await outputs.dead_letter(BOOK_COMMANDS, event, reason)
    metrics.BATCH.observe(len(events))
    for key, command, outcome in batch.applied:
        metrics.COMMANDS.labels(command.type).inc()
        if outcome.rejection:
            metrics.REJECTED.labels(command.type).inc()
            log.info("book %s refused %s: %s", key, command.correlation_id, outcome.rejection)
        if outcome.changed:
            metrics.observe_board(outcome.board)
    await _publish(batch.messages)
    for key, command, outcome in batch.applied:
        if outcome.fills:
            metrics.observe_trades(command, len(outcome.fills))
            log.info(
                "book %s: %d trade(s) from %s", key, len(outcome.fills), command.correlation_id
            )
    for key, (version, book, changed) in batch.books.items():
        if book is None:
            continue
        if changed:
            written = 1 if version is None else version + 1
            with _partition_of(batch.sources[key]):
                books[key] = {"version": written, "book": book.to_dict()}
            _cache[key] = (written, book)
        elif version is not None:
            _cache[key] = (version, book)


async def _publish(messages: list[tuple[TopicSpec, str, Message]]) -> None:
    """Publish a batch's outputs until the broker has them all.

    The commands' offsets are acknowledged once the batch is done, so giving up here would
    skip them: matching waits for the broker instead, and says so. A send that did land is sent
    again with the same event ids, which readers dedupe.
    """
    delay = PUBLISH_RETRY_S
    while True:
        try:
            await outputs.publish_all(messages)
            return
        except (KafkaError, OSError, TimeoutError) as exc:
            metrics.PUBLISH_RETRIES.inc()
            log.warning(
                "the broker did not take %d output(s) (%r); matching waits, sending again in %.1fs",
                len(messages),
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, PUBLISH_RETRY_MAX_S)


@contextmanager
def _partition_of(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event while a table record is written.

    A table record goes to the changelog partition of the event being processed, which faust
    reads from a context variable that its per-event iteration sets; a batch taken with
    ``take_events`` leaves it unset, so the write-back names the event of the book's commands.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _plan(events: list[Any]) -> _Batch:
    batch = _Batch()
    for event in events:
        try:
            command = decode(BOOK_COMMANDS, event.value)
        except UndecodableMessage as exc:
            batch.dead.append((event, str(exc), "undecodable"))
            continue
        if not isinstance(command, BOOK_COMMAND_TYPES):
            reason = f"{type(command).__name__} is no book command"
            batch.dead.append((event, reason, "not_a_book_command"))
            continue
        key = book_key(command.variety, command.grade)
        if event.key is not None and event.key != encode_key(key):
            batch.dead.append((event, f"key does not name book {key}", "wrong_key"))
            continue
        metrics.observe_lag(app, event)
        batch.sources[key] = event
        try:
            if key not in batch.books:
                stored = books.get(key)
                version = None if stored is None else stored["version"]
                batch.books[key] = (version, _book(key, stored), False)
            version, book, changed = batch.books[key]
            outcome = apply(book, command)
        except (ValueError, KeyError, TypeError) as exc:
            # A command the book cannot take must not stop the agent: faust would go on
            # without it.
            raise BookBroken(key, exc) from exc
        batch.books[key] = (version, outcome.book, changed or outcome.changed)
        batch.applied.append((key, command, outcome))
        batch.messages += [(TRADES, key, trade) for trade in trade_events(outcome.fills)]
        batch.messages += [
            (BID_UPDATES, b.bid_id, b) for b in bid_events(outcome.book, outcome.bid_updates)
        ]
        if outcome.changed:
            line = board_event(outcome.board, command.correlation_id)
            batch.messages.append((BOARD_UPDATES, key, line))
    return batch


_cache: dict[str, tuple[int, Book]] = {}
"""Books as objects, so a command does not rebuild its book from the table each time.

An entry is taken out while its command runs and put back only once the table holds the book it
matches, with the same version; anything that fails in between leaves no entry, and the next
command rebuilds the book from the table. After a rebalance the table's version decides too.
"""


def _book(key: str, stored: dict[str, Any] | None) -> Book | None:
    cached = _cache.pop(key, None)
    if stored is None:
        return None
    if cached is not None and cached[0] == stored["version"]:
        return cached[1]
    return Book.from_dict(stored["book"])
