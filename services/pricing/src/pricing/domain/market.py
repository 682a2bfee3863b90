"""Applies book commands to books and says what to publish: the one entry point of the matcher.

Kept apart from the faust agent so that replaying the same commands through ``apply`` gives the
same trades, bid states and board lines, with no broker in sight.

Every command first brings its book to the command's ``occurred_at``: the trading day rolls over
and bids whose expiry has come leave as expired. That happens even when the command itself turns
out to be a duplicate or is refused, so ``changed``, ``duplicate`` and ``rejection`` are
independent: a duplicate can still come with expired bids and a new board line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import assert_never

from melon_contracts.commands import (
    AmendBid,
    BookCommand,
    CancelBid,
    OfferLot,
    PlaceBid,
    SetLotReserve,
    WithdrawLot,
)
from melon_contracts.reference import book_key
from pricing.domain.board import BoardLine
from pricing.domain.book import BidState, Book, Effects, Fill
from pricing.domain.errors import PricingError, WrongBook


@dataclass(frozen=True)
class Outcome:
    """What one command did to its book.

    - ``book``: the book after the command (the same object that was passed in, changed in place);
    - ``board``: the book's board line after the command;
    - ``fills``: the trades made, in order;
    - ``bid_updates``: one final state per bid the command touched (expired, placed, filled,
      amended, cancelled), in the order they were first touched; publish them all;
    - ``changed``: the book changed (write it back, publish the board line);
    - ``duplicate``: the command's lot or bid id was seen before, so it had no effect of its own;
    - ``rejection``: why the command was refused, or None.
    """

    book: Book
    board: BoardLine
    fills: list[Fill] = field(default_factory=list)
    bid_updates: list[BidState] = field(default_factory=list)
    changed: bool = False
    duplicate: bool = False
    rejection: str | None = None


def apply(book: Book | None, command: BookCommand) -> Outcome:
    """Apply one command to its book (a new book when ``book`` is None).

    Raises ``WrongBook`` when the command names another book; every other refusal is the
    outcome's ``rejection``.
    """
    key = book_key(command.variety, command.grade)
    if book is None:
        book = Book(key, command.variety, command.grade)
    elif book.key != key:
        raise WrongBook(f"command for {key} routed to book {book.key}")
    effects = Effects()
    book.open(command.occurred_at, effects)
    duplicate = False
    rejection = None
    try:
        duplicate = not _dispatch(book, command, effects)
    except PricingError as exc:
        rejection = str(exc)
        refused = _refused_state(book, command, rejection)
        if refused is not None:
            effects.note(refused)
    return Outcome(
        book=book,
        board=book.board(),
        fills=effects.fills,
        bid_updates=list(effects.bids.values()),
        changed=effects.changed,
        duplicate=duplicate,
        rejection=rejection,
    )


def _dispatch(book: Book, command: BookCommand, effects: Effects) -> bool:
    """Apply the command itself; False when it is a duplicate."""
    if isinstance(command, OfferLot):
        return book.offer_lot(
            command.lot_id,
            command.farmer_id,
            command.crates,
            command.net_g,
            command.reserve_fen_per_kg,
            effects,
        )
    if isinstance(command, PlaceBid):
        return book.place_bid(
            command.bid_id,
            command.merchant_id,
            command.price_fen_per_kg,
            command.quantity_g,
            effects,
            at=command.occurred_at,
            min_lot_g=command.min_lot_g,
            destination=command.destination,
            cold_chain=command.cold_chain,
            expires_at=command.expires_at,
        )
    if isinstance(command, AmendBid):
        book.amend_bid(
            command.bid_id,
            command.merchant_id,
            command.price_fen_per_kg,
            command.quantity_g,
            effects,
        )
    elif isinstance(command, CancelBid):
        book.cancel_bid(command.bid_id, command.merchant_id, effects)
    elif isinstance(command, WithdrawLot):
        book.withdraw_lot(command.lot_id, effects)
    elif isinstance(command, SetLotReserve):
        book.set_lot_reserve(command.lot_id, command.reserve_fen_per_kg, effects)
    else:
        assert_never(command)
    return True


def _refused_state(book: Book, command: BookCommand, reason: str) -> BidState | None:
    """The bid state that answers a refused command, if there is a merchant's bid to describe.

    A refused ``PlaceBid`` is ``rejected`` (it never rested). A refused amend or cancel of the
    merchant's own bid reports the bid as it stands, so a refusal never reads as if the bid were
    gone; one for an unknown bid or another merchant's bid has nothing of theirs to report.
    """
    if isinstance(command, PlaceBid):
        return BidState(
            bid_id=command.bid_id,
            merchant_id=command.merchant_id,
            status="rejected",
            price_fen_per_kg=command.price_fen_per_kg,
            quantity_g=command.quantity_g,
            filled_g=0,
            remaining_g=0,
            amount_fen=0,
            reason=reason,
        )
    if isinstance(command, AmendBid | CancelBid):
        return book.standing(command.bid_id, command.merchant_id, reason)
    return None
