"""Conversions between what people type (kg, yuan) and what events carry (grams, fen).

Weights are integer grams and money integer fen so that sums are exact. Converting refuses input
that would need rounding: 12.3456 kg is a typing error, not a weight. It also refuses a negative
amount, since no weight, price or limit a person types into the hall is below zero; a difference
(a scale's drift below zero) says so with ``signed=True``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

GRAMS_PER_KG = 1000
FEN_PER_YUAN = 100


class UnitError(ValueError):
    """A quantity that is not a finite, exact amount in the expected unit."""


def _exact(value: Decimal | str | int, scale: int, what: str, *, signed: bool = False) -> int:
    """``value`` times ``scale`` as a whole, non-negative number, or a UnitError saying why not."""
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise UnitError(f"{what} {value!r} is not a number") from exc
    if not number.is_finite():
        raise UnitError(f"{what} {value!r} is not a finite number")
    if number < 0 and not signed:
        raise UnitError(f"{what} {value} is below zero")
    scaled = number * scale
    if scaled != scaled.to_integral_value():
        raise UnitError(f"{what} {value} has more precision than 1/{scale}")
    return int(scaled)


def kg_to_g(kg: Decimal | str | int, *, signed: bool = False) -> int:
    """Kilograms to grams; ``signed`` for a difference such as a scale's drift, never a weight."""
    return _exact(kg, GRAMS_PER_KG, "weight in kg", signed=signed)


def yuan_to_fen(yuan: Decimal | str | int) -> int:
    return _exact(yuan, FEN_PER_YUAN, "amount in yuan")


def g_to_kg(grams: int) -> Decimal:
    return Decimal(grams) / GRAMS_PER_KG


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


def amount_fen(weight_g: int, price_fen_per_kg: int) -> int:
    """Money for a weight at a price per kg, rounded half up to the fen."""
    exact = Decimal(weight_g) * Decimal(price_fen_per_kg) / GRAMS_PER_KG
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
