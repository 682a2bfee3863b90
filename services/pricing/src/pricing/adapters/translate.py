"""Domain results to contract events, at the edge."""

from __future__ import annotations

from dataclasses import asdict

from melon_contracts.events import BidUpdated, BoardUpdated, TradeExecuted
from pricing.domain.board import BoardLine
from pricing.domain.book import BidState, Book, Fill


def trade_events(fills: list[Fill]) -> list[TradeExecuted]:
    return [
        TradeExecuted(
            correlation_id=fill.lot_id,
            trade_id=fill.trade_id,
            book=fill.book,
            sequence=fill.sequence,
            lot_id=fill.lot_id,
            farmer_id=fill.farmer_id,
            bid_id=fill.bid_id,
            merchant_id=fill.merchant_id,
            variety=fill.variety,
            grade=fill.grade,
            crates=fill.crates,
            weight_g=fill.weight_g,
            price_fen_per_kg=fill.price_fen_per_kg,
            amount_fen=fill.amount_fen,
            destination=fill.destination,
            cold_chain=fill.cold_chain,
        )
        for fill in fills
    ]


def board_event(line: BoardLine, cause: str) -> BoardUpdated:
    return BoardUpdated(correlation_id=cause, **asdict(line))


def bid_events(book: Book, states: list[BidState]) -> list[BidUpdated]:
    return [
        BidUpdated(
            correlation_id=state.bid_id,
            bid_id=state.bid_id,
            merchant_id=state.merchant_id,
            book=book.key,
            variety=book.variety,
            grade=book.grade,
            status=state.status,
            price_fen_per_kg=state.price_fen_per_kg,
            quantity_g=state.quantity_g,
            filled_g=state.filled_g,
            remaining_g=state.remaining_g,
            amount_fen=state.amount_fen,
            reason=state.reason,
        )
        for state in states
    ]
