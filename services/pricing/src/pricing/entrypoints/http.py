"""The pricing HTTP API: merchants place and cancel bids; everyone reads the price board."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from melon_contracts.commands import CancelBid, PlaceBid
from melon_contracts.events import BoardUpdated
from melon_contracts.reference import (
    VARIETIES,
    Grade,
    Identifier,
    UnknownVariety,
    book_key,
    check_variety,
)
from melon_contracts.topics import BOOK_COMMANDS
from melon_contracts.transport import PublishFailed, not_ready
from melon_contracts.units import UnitError, fen_to_yuan, g_to_kg, kg_to_g, yuan_to_fen
from melon_contracts.web import Refusals, documented, install_error_handlers
from pricing.bootstrap import PricingApi
from pricing.domain.errors import PricingError, UnknownBoardLine


class BidRequest(BaseModel):
    bid_id: Identifier | None = Field(
        default=None, description="Your id for the bid; sending it again never places it twice"
    )
    merchant_id: Identifier
    variety: str
    grade: Grade
    price_yuan_per_kg: Decimal = Field(gt=0, le=1000)
    quantity_kg: Decimal = Field(gt=0, le=1_000_000)
    destination: str = Field(default="", max_length=64)
    cold_chain: bool = False


class CancelRequest(BaseModel):
    merchant_id: Identifier
    variety: str
    grade: Grade


def _api(request: Request) -> PricingApi:
    api: PricingApi = request.app.state.api
    return api


Api = Annotated[PricingApi, Depends(_api)]


_REFUSALS: Refusals = {
    UnknownVariety: (422, "unknown_variety"),
    UnitError: (422, "invalid_amount"),
    UnknownBoardLine: (404, "unknown_board_line"),
    PricingError: (409, "pricing_rule"),
    PublishFailed: (503, "broker_unavailable"),
}


def board_json(line: BoardUpdated) -> dict[str, Any]:
    def yuan(fen: int | None) -> str | None:
        return None if fen is None else str(fen_to_yuan(fen))

    zh, en = VARIETIES.get(line.variety, (line.variety, line.variety))
    return {
        "book": line.book,
        "variety": line.variety,
        "variety_zh": zh,
        "variety_en": en,
        "grade": line.grade.value,
        "grade_zh": line.grade.zh,
        "best_bid_yuan_per_kg": yuan(line.best_bid_fen_per_kg),
        "bids_resting": line.bids_resting,
        "bid_depth_kg": str(g_to_kg(line.bid_depth_g)),
        "lots_resting": line.lots_resting,
        "offered_kg": str(g_to_kg(line.offered_g)),
        "last_price_yuan_per_kg": yuan(line.last_price_fen_per_kg),
        "volume_kg": str(g_to_kg(line.volume_g)),
        "trades": line.trades,
        "updated_at": line.occurred_at.isoformat(),
    }


def create_app(api: PricingApi) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for reader in api.readers:
            reader.start()
        yield
        for reader in api.readers:
            reader.stop()

    app = FastAPI(title="Melon Hall pricing", lifespan=lifespan)
    app.state.api = api

    install_error_handlers(app, _REFUSALS)

    @app.post("/bids", status_code=202, responses=documented(_REFUSALS))
    def place_bid(body: BidRequest, api: Api) -> dict[str, Any]:
        """Send a bid to its book; the matcher fills it against graded lots."""
        variety = check_variety(body.variety)
        price = yuan_to_fen(body.price_yuan_per_kg)
        quantity = kg_to_g(body.quantity_kg)
        bid_id = body.bid_id or f"B-{uuid.uuid4().hex[:12]}"
        book = book_key(variety, body.grade)
        command = PlaceBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=body.merchant_id,
            variety=variety,
            grade=body.grade,
            price_fen_per_kg=price,
            quantity_g=quantity,
            destination=body.destination,
            cold_chain=body.cold_chain,
        )
        api.publisher.publish(BOOK_COMMANDS, book, command)
        return {
            "bid_id": bid_id,
            "book": book,
            "status": "accepted",
            "event_id": str(command.event_id),
        }

    @app.post("/bids/{bid_id}/cancel", status_code=202)
    def cancel_bid(bid_id: Identifier, body: CancelRequest, api: Api) -> dict[str, Any]:
        """Ask the book to withdraw what is left of a resting bid."""
        variety = check_variety(body.variety)
        book = book_key(variety, body.grade)
        command = CancelBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=body.merchant_id,
            variety=variety,
            grade=body.grade,
        )
        api.publisher.publish(BOOK_COMMANDS, book, command)
        return {"bid_id": bid_id, "book": book, "status": "cancel requested"}

    @app.get("/board")
    def board(api: Api) -> dict[str, Any]:
        """The price board: one line per variety x grade that has seen a lot or a bid."""
        return {"lines": [board_json(line) for line in api.board.lines()]}

    @app.get("/board/{variety}/{grade}")
    def board_line(variety: str, grade: Grade, api: Api) -> dict[str, Any]:
        return board_json(api.board.line(book_key(check_variety(variety), grade)))

    @app.get("/healthz")
    def healthz(api: Api) -> JSONResponse:
        waiting = {r.name: state for r in api.readers if (state := not_ready(r))}
        if waiting:
            return JSONResponse(status_code=503, content={"status": "starting", "waiting": waiting})
        return JSONResponse(content={"status": "ok"})

    return app
