"""How weights and money read, for machines (exact) and for people (rounded, grouped).

Events carry integer grams and fen; these turn them into the strings APIs, pages and printed
papers show. The API forms are exact and lose nothing (``1250.5`` for 1,250,500 g); the forms for
people round half up and group thousands, and say so in their names. Every service formats
through here, so a weight reads the same on a ticket, the board and a dispatch note.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from melon_contracts.units import FEN_PER_YUAN, GRAMS_PER_KG


def kg_exact(grams: int) -> str:
    """Grams as an exact kg number without trailing zeros, for APIs: 1250500 -> ``1250.5``."""
    return f"{(Decimal(grams) / GRAMS_PER_KG).normalize():f}"


def kg_at_division(grams: int, division_g: int = 1) -> str:
    """Kilograms to a scale's resolution: d = 200 g shows ``464.0``, d = 20 kg shows ``18460``."""
    if division_g <= 0:
        raise ValueError(f"a scale division must be positive, not {division_g}")
    places = 3
    while places > 0 and division_g % 10 ** (4 - places) == 0:
        places -= 1
    return f"{Decimal(grams) / GRAMS_PER_KG:.{places}f}"


def kg_text(grams: int) -> str:
    """A weight for a ticket: two decimals, three when the grams need them: ``612.40 kg``."""
    places = 2 if grams % 10 == 0 else 3
    return f"{Decimal(grams) / GRAMS_PER_KG:.{places}f} kg"


def kg_grouped(grams: int) -> str:
    """Kilograms as exact as weighed, thousands grouped, no trailing zeros: ``1,250.5``."""
    whole, _, fraction = kg_exact(abs(grams)).partition(".")
    sign = "-" if grams < 0 else ""
    grouped = f"{sign}{int(whole):,}"
    return f"{grouped}.{fraction}" if fraction else grouped


def kg_rounded(grams: int, places: int = 1) -> str:
    """Kilograms rounded half up for people, thousands grouped: 1,234,567 g -> ``1,234.6``.

    For a weight worked out rather than weighed (what a part of a lot sold weighs): the event
    keeps the exact grams, people read it to a sensible place.
    """
    step = Decimal(1).scaleb(-places)
    value = (Decimal(grams) / GRAMS_PER_KG).quantize(step, rounding=ROUND_HALF_UP)
    return f"{value:,.{places}f}"


def yuan_text(fen: int) -> str:
    """Fen as yuan with both decimals: 123456 -> ``1234.56``."""
    return f"{Decimal(fen) / FEN_PER_YUAN:.2f}"


def yuan_grouped(fen: int) -> str:
    """Fen as yuan for a statement, thousands grouped: 123456 -> ``1,234.56``."""
    return f"{Decimal(fen) / FEN_PER_YUAN:,.2f}"
