"""Commands: requests to an order book, named in the imperative.

Every command for one book travels on ``book.commands`` keyed by the book, so one matcher sees a
book's lots and bids in a single total order and replaying the topic replays the market.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from melon_contracts.envelope import Message
from melon_contracts.reference import Grade, Identifier


class OfferLot(Message):
    """Put a graded lot on its book at a reserve price."""

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
    destination: str = Field(default="", max_length=64)
    cold_chain: bool = False


class CancelBid(Message):
    """Withdraw what is left of a resting bid."""

    type: Literal["CancelBid"] = "CancelBid"
    bid_id: Identifier
    merchant_id: Identifier
    variety: Identifier
    grade: Grade


BookCommand = Annotated[OfferLot | PlaceBid | CancelBid, Field(discriminator="type")]
