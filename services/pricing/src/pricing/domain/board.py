"""The price board's arithmetic: one line per book, with the hall's trading-day figures.

The trading day is the hall's calendar day in Asia/Shanghai (UTC+8, no daylight saving), taken
from the commands' own timestamps, so the figures are the same whenever the commands are replayed.

Units: prices are integer fen per kg, weights integer grams, amounts integer fen. The day's VWAP
is ``amount_fen_today / (volume_g_today / 1000)`` fen per kg, rounded half up to the fen; the two
totals travel with it for anyone who needs the exact ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from melon_contracts.reference import Grade
from melon_contracts.units import GRAMS_PER_KG

HALL_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The hall's clock: a fixed UTC+8, as China keeps no daylight saving."""

DEPTH_LEVELS = 5
"""How many of the best bid prices the board shows."""


def trading_day(at: datetime) -> date:
    """The hall's calendar day an instant falls on."""
    if at.tzinfo is None:
        raise ValueError(f"{at} has no time zone; the hall's day needs one")
    return at.astimezone(HALL_TIME).date()


def vwap_fen_per_kg(amount_fen: int, volume_g: int) -> int | None:
    """Volume-weighted average price in fen per kg, rounded half up; None without volume.

    ``amount_fen * 1000 / volume_g`` in integers: ``floor(x + 1/2)`` is
    ``(2 * amount_fen * 1000 + volume_g) // (2 * volume_g)``.
    """
    if volume_g <= 0:
        return None
    return (2 * amount_fen * GRAMS_PER_KG + volume_g) // (2 * volume_g)


def change_fen_per_kg(last: int | None, previous_close: int | None) -> int | None:
    """The last price against the previous close; None until both exist."""
    if last is None or previous_close is None:
        return None
    return last - previous_close


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """Bids resting at one price: how many and how much they still want."""

    price_fen_per_kg: int
    bids: int
    quantity_g: int


@dataclass(frozen=True, slots=True)
class BoardLine:
    """A book's line on the price board, field for field what ``BoardUpdated`` carries."""

    book: str
    variety: str
    grade: Grade
    best_bid_fen_per_kg: int | None
    bids_resting: int
    bid_depth_g: int
    depth: tuple[DepthLevel, ...]
    lots_resting: int
    offered_g: int
    last_price_fen_per_kg: int | None
    volume_g: int
    trades: int
    trading_day: date | None
    high_fen_per_kg: int | None
    low_fen_per_kg: int | None
    vwap_fen_per_kg: int | None
    volume_g_today: int
    amount_fen_today: int
    trades_today: int
    previous_close_fen_per_kg: int | None
    change_fen_per_kg: int | None


@dataclass(slots=True)
class Tape:
    """What a book has traded: all time, and on the hall's current trading day.

    The day only moves forward: a command stamped a little earlier than the one before it counts
    on the later day. ``previous_close`` is the last price of the latest earlier day that had
    trades, so a day without trades keeps the close from before it.
    """

    last_price_fen_per_kg: int | None = None
    volume_g: int = 0
    trades: int = 0
    day: date | None = None
    high_fen_per_kg: int | None = None
    low_fen_per_kg: int | None = None
    volume_g_today: int = 0
    amount_fen_today: int = 0
    trades_today: int = 0
    previous_close_fen_per_kg: int | None = None

    def roll(self, day: date) -> bool:
        """Move to ``day`` if it is later than the current one; True when the day changed."""
        if self.day is not None and day <= self.day:
            return False
        if self.trades_today:
            self.previous_close_fen_per_kg = self.last_price_fen_per_kg
        self.day = day
        self.high_fen_per_kg = self.low_fen_per_kg = None
        self.volume_g_today = self.amount_fen_today = self.trades_today = 0
        return True

    def record(self, weight_g: int, amount_fen: int, price_fen_per_kg: int) -> int:
        """Count one trade; returns its sequence number in the book (1, 2, 3 ...)."""
        self.trades += 1
        self.trades_today += 1
        self.last_price_fen_per_kg = price_fen_per_kg
        self.volume_g += weight_g
        self.volume_g_today += weight_g
        self.amount_fen_today += amount_fen
        if self.high_fen_per_kg is None or price_fen_per_kg > self.high_fen_per_kg:
            self.high_fen_per_kg = price_fen_per_kg
        if self.low_fen_per_kg is None or price_fen_per_kg < self.low_fen_per_kg:
            self.low_fen_per_kg = price_fen_per_kg
        return self.trades

    @property
    def vwap_fen_per_kg(self) -> int | None:
        return vwap_fen_per_kg(self.amount_fen_today, self.volume_g_today)

    @property
    def change_fen_per_kg(self) -> int | None:
        return change_fen_per_kg(self.last_price_fen_per_kg, self.previous_close_fen_per_kg)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``trade_sequence`` is the number of the book's last trade."""
        return {
            "last_price_fen_per_kg": self.last_price_fen_per_kg,
            "volume_g": self.volume_g,
            "trade_sequence": self.trades,
            "trading_day": None if self.day is None else self.day.isoformat(),
            "high_fen_per_kg": self.high_fen_per_kg,
            "low_fen_per_kg": self.low_fen_per_kg,
            "volume_g_today": self.volume_g_today,
            "amount_fen_today": self.amount_fen_today,
            "trades_today": self.trades_today,
            "previous_close_fen_per_kg": self.previous_close_fen_per_kg,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Tape:
        day = state["trading_day"]
        return cls(
            last_price_fen_per_kg=state["last_price_fen_per_kg"],
            volume_g=state["volume_g"],
            trades=state["trade_sequence"],
            day=None if day is None else date.fromisoformat(day),
            high_fen_per_kg=state["high_fen_per_kg"],
            low_fen_per_kg=state["low_fen_per_kg"],
            volume_g_today=state["volume_g_today"],
            amount_fen_today=state["amount_fen_today"],
            trades_today=state["trades_today"],
            previous_close_fen_per_kg=state["previous_close_fen_per_kg"],
        )
