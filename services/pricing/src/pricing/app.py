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
from faust.types import TP

from melon_contracts.admin import BOOK_RECORD_MAX_BYTES
from melon_contracts.codec import UndecodableMessage, decode, decode_key
from melon_contracts.commands import (
    BookCommand,
    OfferLot,
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
from melon_contracts.transport import wrong_key
from pricing import metrics
from pricing.adapters.command_log import (
    Command,
    CommandLog,
    KafkaCommandLog,
    MissingCommands,
    Unusable,
)
from pricing.adapters.outputs import FaustOutputs, Outputs
from pricing.adapters.translate import bid_events, board_event, trade_events
from pricing.domain.book import Book
from pricing.domain.market import Outcome, apply
from pricing.settings import Settings

log = logging.getLogger(__name__)
settings = Settings()
MATCH_BATCH = settings.match_batch
MATCH_WITHIN_S = settings.match_within_ms / 1000
PUBLISH_RETRY_S = 0.5
PUBLISH_RETRY_MAX_S = 10.0
WATCH_S = 1.0
STALL_S = 2.0

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
        if not isinstance(graded, LotGraded):
            continue
        expected = LOTS_GRADED.key_of(graded)
        key = decode_key(event.key)
        if key is not None and key != expected:
            await outputs.dead_letter(LOTS_GRADED, event, wrong_key(LOTS_GRADED, key, expected))
            continue
        key = book_key(graded.variety, graded.grade)
        await _publish([(BOOK_COMMANDS, key, offer(graded))])


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
    # faust may acknowledge these events (commit their offsets) once the body is done; what
    # the matcher applied is decided by its own marks in the table, not by those commits.
    async for events in stream.take_events(MATCH_BATCH, within=MATCH_WITHIN_S):
        async with _turn:
            await take(list(events))


_turn = asyncio.Lock()
"""One batch at a time: the stream's and the watch's, so a mark is read and written in order."""

command_log: CommandLog = KafkaCommandLog(settings.bootstrap)


def _mark_key(partition: int) -> str:
    """The table key of a partition's mark: the last offset applied there, in that partition's
    changelog. ``@`` never starts a book key (variety.grade)."""
    return f"@applied/{partition}"


async def applied_through(partition: int) -> int:
    """The last offset of ``partition`` whose effect the table holds.

    A partition without a mark has had nothing applied: everything the log still holds is new.
    """
    mark = books.get(_mark_key(partition))
    if mark is not None:
        return int(mark["through"])
    first: int = await _from_log(command_log.first_offset, partition)
    return first - 1


async def take(events: list[Any]) -> None:
    """Apply what the stream delivered, exactly once in effect, in the log's order.

    Per partition: a command at or below the mark was applied before (a replay after a crash)
    and is skipped; a command past the next expected offset means the stream skipped some, and
    the matcher reads those from the log itself and applies them first.
    """
    delivered: dict[int, list[Command]] = {}
    for event in events:
        command = Command.of_event(event)
        delivered.setdefault(command.partition, []).append(command)
    commands: list[Command] = []
    for partition, received in delivered.items():
        expected = await applied_through(partition) + 1
        for command in sorted(received, key=lambda c: c.offset):
            if command.offset < expected:
                metrics.REPEATS.inc()
                continue
            if command.offset > expected:
                missing = await _from_log(command_log.read, partition, expected, command.offset)
                log.warning(
                    "%s[%d]: the stream skipped offsets %d-%d; applying %d read from the log",
                    BOOK_COMMANDS.name,
                    partition,
                    expected,
                    command.offset - 1,
                    len(missing),
                )
                metrics.FETCHED.labels("skipped").inc(len(missing))
                await _acknowledged(partition, expected, command.offset - 1)
                commands += missing
            commands.append(command)
            expected = command.offset + 1
    if commands:
        await match_batch(commands)


async def catch_up(partition: int) -> int:
    """Apply whatever ``partition`` holds past the mark; the number of commands applied.

    The stream can lose records it already fetched (faust clears its queues when a rebalance's
    recovery ends) and then never fetch them again; with nothing arriving behind them no gap
    shows. The watch below calls this for a partition that has stood still behind its end.
    """
    async with _turn:
        start = await applied_through(partition) + 1
        end = await _from_log(command_log.end_offset, partition)
        missing = await _from_log(command_log.read, partition, start, end) if end > start else []
        if missing:
            log.warning(
                "%s[%d]: %d command(s) up to offset %d were never delivered; applying them from "
                "the log",
                BOOK_COMMANDS.name,
                partition,
                len(missing),
                end - 1,
            )
            metrics.FETCHED.labels("stalled").inc(len(missing))
        for first in range(0, len(missing), MATCH_BATCH):
            await match_batch(missing[first : first + MATCH_BATCH])
        if missing:
            await _acknowledged(partition, start, end - 1)
        return len(missing)


async def _acknowledged(partition: int, first: int, last: int) -> None:
    """Tell faust that offsets ``first``..``last`` are done, though its stream never had them.

    Correctness rests on the marks, not on faust's commits; but faust commits a partition only
    up to its first offset not acknowledged, so without this its committed offset (and the
    group's lag) would stand still at the records it dropped until the next restart. faust
    keeps such ranges as "gaps", its own name for offsets a stream will not see.
    """
    add_gap = getattr(app.consumer, "_add_gap", None)
    if add_gap is not None and last >= first:
        await add_gap(TP(BOOK_COMMANDS.name, partition), first, last)


_still: dict[int, tuple[int, float]] = {}
"""Per partition: the mark the watch saw behind the log's end, and since when."""


@app.timer(interval=WATCH_S)  # type: ignore[untyped-decorator]
async def watch_for_stalls() -> None:
    """Catch up a partition whose mark has stood behind the log's end for ``STALL_S``."""
    if app.rebalancing or _turn.locked():
        return
    now = asyncio.get_running_loop().time()
    for tp in app.assignor.assigned_actives():
        if tp.topic != BOOK_COMMANDS.name:
            continue
        try:
            end = await command_log.end_offset(tp.partition)
            through = await applied_through(tp.partition)
        except (KafkaError, OSError, TimeoutError):
            return  # the broker is away; matching waits for it too
        if end <= through + 1:
            _still.pop(tp.partition, None)
            continue
        seen = _still.get(tp.partition)
        if seen is None or seen[0] != through:
            _still[tp.partition] = (through, now)
        elif now - seen[1] >= STALL_S and not app.rebalancing:
            _still.pop(tp.partition, None)
            await catch_up(tp.partition)


async def _from_log(read: Any, *args: int) -> Any:
    """Ask the log until it answers: a command is never skipped for want of the broker."""
    delay = PUBLISH_RETRY_S
    while True:
        try:
            return await read(*args)
        except (KafkaError, OSError, TimeoutError, MissingCommands) as exc:
            log.warning("reading %s failed (%r); again in %.1fs", BOOK_COMMANDS.name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, PUBLISH_RETRY_MAX_S)


class BookBroken(Exception):
    """A book raised where it should have refused: its in-memory copy may be half changed."""

    def __init__(self, key: str, cause: Exception) -> None:
        super().__init__(f"book {key} refused: {cause!r}")
        self.key = key


@dataclass
class _Stored:
    """A book as a batch holds it: the table version it was read at, the book now, whether the
    batch changed it, and the offset its stored record was written through."""

    version: int | None
    book: Book | None
    changed: bool
    through: int


@dataclass
class _Batch:
    """The commands of one take, applied in memory: what to publish, what to write back."""

    books: dict[str, _Stored] = field(default_factory=dict)
    sources: dict[str, Command] = field(default_factory=dict)
    """Per book: a command of its own, whose partition its table record belongs to."""
    marks: dict[int, Command] = field(default_factory=dict)
    """Per partition: the batch's last command there, the offset its mark moves to."""
    messages: list[tuple[TopicSpec, str, Message]] = field(default_factory=list)
    dead: list[tuple[Command, str, str]] = field(default_factory=list)
    """Commands to dead-letter: the command, why, and the ``REJECTED`` label."""
    applied: list[tuple[str, BookCommand, Outcome]] = field(default_factory=list)
    """Each command applied, with its book's key and what it did; counted once the batch
    stands, so a batch run again command by command is not counted twice."""
    repeated: int = 0


async def match_batch(commands: list[Command]) -> None:
    """Apply a batch of commands in order, publish all their outputs and wait for every
    acknowledgement at once, then write the books back and, after them, each partition's mark.

    One round trip to the broker per batch instead of per command. A crash before the marks are
    written runs the batch again: books already written carry the offset they hold, so their
    commands are not applied twice, and the outputs carry the same deterministic ids.
    If a book raises, nothing of the batch has left the process: it is run again one command
    at a time from the table, so only the command at fault is dead-lettered.
    """
    try:
        batch = _plan(commands)
    except BookBroken as broken:
        if len(commands) > 1:
            for command in commands:
                await match_batch([command])
            return
        metrics.REJECTED.labels("book_refused").inc()
        await outputs.dead_letter(BOOK_COMMANDS, commands[0], str(broken))
        _write_marks({commands[0].partition: commands[0]})
        return
    for command, reason, label in batch.dead:
        metrics.REJECTED.labels(label).inc()
        await outputs.dead_letter(BOOK_COMMANDS, command, reason)
    metrics.BATCH.observe(len(commands))
    metrics.REPEATS.inc(batch.repeated)
    for key, book_command, outcome in batch.applied:
        metrics.COMMANDS.labels(book_command.type).inc()
        if outcome.rejection:
            metrics.REJECTED.labels(book_command.type).inc()
            log.info("book %s refused %s: %s", key, book_command.correlation_id, outcome.rejection)
        if outcome.changed:
            metrics.observe_board(outcome.board)
    await _publish(batch.messages)
    for key, book_command, outcome in batch.applied:
        if outcome.fills:
            metrics.observe_trades(book_command, len(outcome.fills))
            log.info(
                "book %s: %d trade(s) from %s", key, len(outcome.fills), book_command.correlation_id
            )
    for key, stored in batch.books.items():
        if stored.book is None:
            continue
        if stored.changed:
            source = batch.sources[key]
            written = 1 if stored.version is None else stored.version + 1
            through = batch.marks[source.partition].offset
            with _partition_of(source):
                books[key] = {"version": written, "through": through, "book": stored.book.to_dict()}
            _cache[key] = (written, stored.book)
        elif stored.version is not None:
            _cache[key] = (stored.version, stored.book)
    _write_marks(batch.marks)


def _write_marks(marks: dict[int, Command]) -> None:
    # Each mark goes to its partition's changelog after the books of the batch, so a mark that
    # survived a crash vouches for every book written before it.
    for partition, last in marks.items():
        with _partition_of(last):
            books[_mark_key(partition)] = {"through": last.offset}


async def _publish(messages: list[tuple[TopicSpec, str, Message]]) -> None:
    """Publish a batch's outputs until the broker has them all.

    The batch's marks are written once it is done, so giving up here would skip its commands:
    matching waits for the broker instead, and says so. A send that did land is sent again
    with the same event ids, which readers dedupe.
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
def _partition_of(command: Command) -> Iterator[None]:
    """Make ``command`` faust's current event while a table record is written.

    A table record goes to the changelog partition of the event being processed, which faust
    reads from a context variable that its per-event iteration sets; a batch taken with
    ``take_events`` (or read from the log) leaves it unset, so the write names a command of the
    partition the record belongs to.
    """
    source: Any = command  # faust reads only ``message.topic`` and ``message.partition``
    token = faust_streams._current_event.set(weakref.ref(source))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _plan(commands: list[Command]) -> _Batch:
    batch = _Batch()
    for command in commands:
        batch.marks[command.partition] = command
        try:
            key, decoded = command.read()
        except Unusable as unusable:
            batch.dead.append((command, unusable.reason, unusable.label))
            continue
        metrics.observe_lag(app, command.topic, command.partition, command.offset)
        try:
            if key not in batch.books:
                stored = books.get(key)
                batch.books[key] = _Stored(
                    version=None if stored is None else stored["version"],
                    book=_book(key, stored),
                    changed=False,
                    through=-1 if stored is None else stored.get("through", -1),
                )
            held = batch.books[key]
            if command.offset <= held.through:
                # The book was written after this command, by a batch whose mark was lost.
                batch.repeated += 1
                continue
            batch.sources[key] = command
            outcome = apply(held.book, decoded)
        except (ValueError, KeyError, TypeError) as exc:
            # A command the book cannot take must not stop the agent: faust would go on
            # without it.
            raise BookBroken(key, exc) from exc
        held.book = outcome.book
        held.changed = held.changed or outcome.changed
        batch.applied.append((key, decoded, outcome))
        batch.messages += [(TRADES, key, trade) for trade in trade_events(outcome.fills)]
        batch.messages += [
            (BID_UPDATES, b.bid_id, b) for b in bid_events(outcome.book, outcome.bid_updates)
        ]
        if outcome.changed:
            line = board_event(outcome.board, decoded.correlation_id)
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
