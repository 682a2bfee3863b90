"""What can go wrong in the market, as named errors the edges map to responses."""

from __future__ import annotations


class PricingError(Exception):
    """Base of the market's domain errors."""


class UnknownBid(PricingError):
    """A cancel for a bid the book does not hold (never placed, filled or cancelled already)."""


class NotYourBid(PricingError):
    """A merchant acted on another merchant's bid."""


class UnknownBoardLine(PricingError):
    """No board line exists yet for a variety and grade."""
