"""What can go wrong in the market, as named errors the edges map to responses.

Inside the matcher a refused command is not an exception that escapes: ``market.apply`` turns
these into the outcome's ``rejection`` text, so a bad command never stops the stream.
"""

from __future__ import annotations


class PricingError(Exception):
    """Base of the market's domain errors."""


class UnknownBid(PricingError):
    """A command for a bid the book does not know (never placed, or finished long ago)."""


class NotYourBid(PricingError):
    """A merchant acted on another merchant's bid."""


class BidNotResting(PricingError):
    """An amend or cancel for a bid that already left the book: filled, cancelled or expired."""


class NothingToAmend(PricingError):
    """An amend that names neither a new price nor a new quantity."""


class BidExpiresOnArrival(PricingError):
    """A bid whose expiry is not after the moment it was placed."""


class UnknownLot(PricingError):
    """A command for a lot the book does not know (never offered, or finished long ago)."""


class LotNotResting(PricingError):
    """A withdraw or reserve change for a lot that already left the book: sold or withdrawn."""


class WrongBook(PricingError, ValueError):
    """A command handed to the book of another variety or grade; a routing fault, not a refusal."""


class UnknownBoardLine(PricingError):
    """No board line exists yet for a variety and grade."""
