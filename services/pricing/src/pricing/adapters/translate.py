"""Domain results to contract events, at the edge."""

from __future__ import annotations

from melon_contracts.events import BoardUpdated, TradeExecuted
from pricing.domain.book import Book, Fill


def trade_events(book: Book, fills: list[Fill]) -> list[TradeExecuted]:
    return [
        TradeExecuted(
            correlation_id=fill.lot_id,
            trade_id=fill.trade_id,
            book=book.key,
            sequence=fill.sequence,
            lot_id=fill.lot_id,
            farmer_id=fill.farmer_id,
            bid_id=fill.bid_id,
            merchant_id=fill.merchant_id,
            variety=book.variety,
            grade=book.grade,
            crates=fill.crates,
            weight_g=fill.weight_g,
            price_fen_per_kg=fill.price_fen_per_kg,
            amount_fen=fill.amount_fen,
            destination=fill.destination,
            cold_chain=fill.cold_chain,
        )
        for fill in fills
    ]


def board_event(book: Book, cause: str) -> BoardUpdated:
    line = book.board()
    return BoardUpdated(
        correlation_id=cause,
        book=book.key,
        variety=book.variety,
        grade=book.grade,
        best_bid_fen_per_kg=line.best_bid_fen_per_kg,
        bids_resting=line.bids_resting,
        bid_depth_g=line.bid_depth_g,
        lots_resting=line.lots_resting,
        offered_g=line.offered_g,
        last_price_fen_per_kg=line.last_price_fen_per_kg,
        volume_g=line.volume_g,
        trades=line.trades,
    )
