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

import logging
from typing import Any

import faust

from melon_contracts.admin import BOOK_RECORD_MAX_BYTES
from melon_contracts.codec import UndecodableMessage, decode, encode_key
from melon_contracts.commands import (
    AmendBid,
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
from pricing.domain.market import apply
from pricing.settings import Settings

log = logging.getLogger(__name__)
settings = Settings()
BOOK_COMMAND_TYPES = (OfferLot, PlaceBid, AmendBid, CancelBid, WithdrawLot, SetLotReserve)

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
    async for event in stream.events():
        await match(event)


async def match(event: Any) -> None:
    try:
        command = decode(BOOK_COMMANDS, event.value)
    except UndecodableMessage as exc:
        metrics.REJECTED.labels("undecodable").inc()
        await outputs.dead_letter(BOOK_COMMANDS, event, str(exc))
        return
    if not isinstance(command, BOOK_COMMAND_TYPES):
        metrics.REJECTED.labels("not_a_book_command").inc()
        await outputs.dead_letter(
            BOOK_COMMANDS, event, f"{type(command).__name__} is no book command"
        )
        return
    key = book_key(command.variety, command.grade)
    if event.key is not None and event.key != encode_key(key):
        metrics.REJECTED.labels("wrong_key").inc()
        await outputs.dead_letter(BOOK_COMMANDS, event, f"key does not name book {key}")
        return
    metrics.observe_lag(app, event)
    stored = books.get(key)
    try:
        outcome = apply(_book(key, stored), command)
    except (ValueError, KeyError, TypeError) as exc:
        # A command the book cannot take must not stop the agent: faust would go on without it.
        metrics.REJECTED.labels("book_refused").inc()
        await outputs.dead_letter(BOOK_COMMANDS, event, f"book {key} refused: {exc!r}")
        return
    metrics.COMMANDS.labels(command.type).inc()
    if outcome.rejection:
        metrics.REJECTED.labels(command.type).inc()
        log.info("book %s refused %s: %s", key, command.correlation_id, outcome.rejection)
    messages: list[tuple[TopicSpec, str, Message]] = []
    messages += [(TRADES, key, trade) for trade in trade_events(outcome.fills)]
    messages += [(BID_UPDATES, b.bid_id, b) for b in bid_events(outcome.book, outcome.bid_updates)]
    if outcome.changed:
        messages.append((BOARD_UPDATES, key, board_event(outcome.board, command.correlation_id)))
    await outputs.publish_all(messages)
    if outcome.fills:
        metrics.observe_trades(command, len(outcome.fills))
        log.info("book %s: %d trade(s) from %s", key, len(outcome.fills), command.correlation_id)
    if outcome.changed:
        metrics.observe_board(outcome.board)
        version = 1 if stored is None else stored["version"] + 1
        books[key] = {"version": version, "book": outcome.book.to_dict()}
        _cache[key] = (version, outcome.book)
    elif stored is not None:
        _cache[key] = (stored["version"], outcome.book)


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
