"""Applies book commands to books and says what to publish: the one entry point of the matcher.

Kept apart from the faust agent so that replaying the same commands through ``apply`` gives the
same trades and board lines, with no broker in sight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from melon_contracts.commands import CancelBid, OfferLot, PlaceBid
from melon_contracts.reference import book_key
from pricing.domain.book import BoardLine, Book, Fill
from pricing.domain.errors import PricingError


@dataclass(frozen=True)
class Outcome:
    """What one command did to its book."""

    book: Book
    fills: list[Fill] = field(default_factory=list)
    changed: bool = False
    duplicate: bool = False
    rejection: str | None = None

    @property
    def board(self) -> BoardLine:
        return self.book.board()


def apply(book: Book | None, command: OfferLot | PlaceBid | CancelBid) -> Outcome:
    key = book_key(command.variety, command.grade)
    if book is None:
        book = Book(key=key, variety=command.variety, grade=command.grade)
    elif book.key != key:
        raise ValueError(f"command for {key} routed to book {book.key}")
    if isinstance(command, OfferLot):
        fills = book.offer_lot(
            command.lot_id,
            command.farmer_id,
            command.crates,
            command.net_g,
            command.reserve_fen_per_kg,
        )
    elif isinstance(command, PlaceBid):
        fills = book.place_bid(
            command.bid_id,
            command.merchant_id,
            command.price_fen_per_kg,
            command.quantity_g,
            command.destination,
            command.cold_chain,
        )
    else:
        try:
            book.cancel_bid(command.bid_id, command.merchant_id)
        except PricingError as exc:
            return Outcome(book=book, rejection=str(exc))
        return Outcome(book=book, changed=True)
    if fills is None:
        return Outcome(book=book, duplicate=True)
    return Outcome(book=book, fills=fills, changed=True)
