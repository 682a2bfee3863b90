"""Commands: requests to an order book, named in the imperative.

Every command for one book travels on ``book.commands`` keyed by the book, so one matcher sees a
book's lots and bids in a single total order and replaying the topic replays the market.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from melon_contracts.envelope import Message
from melon_contracts.reference import Grade, Identifier


class OfferLot(Message):
    """Put a graded lot on its book at a reserve price (the grade's floor unless set per lot)."""

    type: Literal["OfferLot"] = "OfferLot"
    lot_id: Identifier
    farmer_id: Identifier
    variety: Identifier
    grade: Grade
    crates: int = Field(ge=1)
    net_g: int = Field(gt=0)
    reserve_fen_per_kg: int = Field(gt=0)


class PlaceBid(Message):
    """A merchant's limit order: up to ``quantity_g`` at up to ``price_fen_per_kg``."""

    type: Literal["PlaceBid"] = "PlaceBid"
    bid_id: Identifier
    merchant_id: Identifier
    variety: Identifier
    grade: Grade
    price_fen_per_kg: int = Field(gt=0, le=100_000)
    quantity_g: int = Field(gt=0, le=1_000_000_000)
    min_lot_g: int | None = Field(
        default=None, gt=0, description="Take no fill smaller than this (a lot size, in grams)"
    )
    destination: str = Field(default="", max_length=64)
    cold_chain: bool = False
    expires_at: AwareDatetime | None = Field(
        default=None, description="The bid leaves the book at this time (end of the trading day)"
    )


class AmendBid(Message):
    """Change a resting bid's price or remaining quantity.

    A new price or a larger quantity sends the bid to the back of its price level; a smaller
    quantity keeps its place.
    """

    type: Literal["AmendBid"] = "AmendBid"
    bid_id: Identifier
    merchant_id: Identifier
    variety: Identifier
    grade: Grade
    price_fen_per_kg: int | None = Field(default=None, gt=0, le=100_000)
    quantity_g: int | None = Field(
        default=None, gt=0, le=1_000_000_000, description="The new remaining quantity"
    )


class CancelBid(Message):
    """Withdraw what is left of a resting bid."""

    type: Literal["CancelBid"] = "CancelBid"
    bid_id: Identifier
    merchant_id: Identifier
    variety: Identifier
    grade: Grade


class WithdrawLot(Message):
    """The cooperative takes what is left of a resting lot off the book."""

    type: Literal["WithdrawLot"] = "WithdrawLot"
    lot_id: Identifier
    variety: Identifier
    grade: Grade
    withdrawn_by: Identifier
    reason: str = Field(default="", max_length=200)


class SetLotReserve(Message):
    """The cooperative overrides one lot's reserve price (its grade's floor by default)."""

    type: Literal["SetLotReserve"] = "SetLotReserve"
    lot_id: Identifier
    variety: Identifier
    grade: Grade
    reserve_fen_per_kg: int = Field(gt=0, le=100_000)
    set_by: Identifier


BookCommand = Annotated[
    OfferLot | PlaceBid | AmendBid | CancelBid | WithdrawLot | SetLotReserve,
    Field(discriminator="type"),
]
