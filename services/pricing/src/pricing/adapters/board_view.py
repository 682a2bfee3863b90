"""The price board the API serves: the latest line per book, kept from ``board.updates``."""

from __future__ import annotations

import threading

from melon_contracts.events import BoardUpdated
from pricing.domain.errors import UnknownBoardLine


class Board:
    """Latest line per book; safe to update from a reader thread while requests read it."""

    def __init__(self) -> None:
        self._lines: dict[str, BoardUpdated] = {}
        self._lock = threading.Lock()

    def update(self, line: BoardUpdated) -> None:
        with self._lock:
            current = self._lines.get(line.book)
            if current is None or _newer(line, current):
                self._lines[line.book] = line

    def lines(self) -> list[BoardUpdated]:
        with self._lock:
            return sorted(self._lines.values(), key=lambda line: line.book)

    def line(self, book: str) -> BoardUpdated:
        with self._lock:
            if book not in self._lines:
                raise UnknownBoardLine(f"no bids or lots yet in {book}")
            return self._lines[book]


def _newer(line: BoardUpdated, current: BoardUpdated) -> bool:
    """A replayed older line must not overwrite a newer one; more activity means newer."""
    return (line.trades, line.occurred_at) >= (current.trades, current.occurred_at)
