"""The pricing HTTP API: merchants bid, amend and cancel; everyone reads the price board.

Merchants act with their token (``Authorization: Bearer <token>``): on their own bids only (403
otherwise), within their purchase limit (409 ``credit_exceeded`` with the figures), and they see
only their own bids and trades. The cooperative's account withdraws lots and sets a lot's reserve.
A command is answered 202 once the broker holds it; the matcher decides, and ``GET /me/bids``
shows what it decided.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from melon_contracts.commands import AmendBid, CancelBid, PlaceBid, SetLotReserve, WithdrawLot
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, TradeExecuted
from melon_contracts.health import health
from melon_contracts.reference import (
    Grade,
    Identifier,
    UnknownVariety,
    book_key,
    check_variety,
)
from melon_contracts.topics import BOOK_COMMANDS
from melon_contracts.transport import PublishFailed, not_ready
from melon_contracts.units import (
    UnitError,
    amount_fen,
    fen_to_yuan,
    g_to_kg,
    kg_to_g,
    yuan_to_fen,
)
from melon_contracts.web import Refusals, documented, install_error_handlers
from pricing.accounts import Account, CreditExceeded, Forbidden, NotAuthenticated
from pricing.bootstrap import PricingApi
from pricing.domain.errors import PricingError, UnknownBid, UnknownBoardLine
from pricing.entrypoints import pages
from pricing.entrypoints.pages import line_view

HALL_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The hall's clock: a bid is good for the trading day, which ends at midnight here."""

REJECTED_BIDS = Counter(
    "melon_pricing_rejected_requests", "Requests the pricing API refused, by reason", ["reason"]
)
COMMANDS = Counter("melon_pricing_commands", "Book commands sent, by kind", ["kind"])


class InvalidBid(PricingError, ValueError):
    """A bid whose figures break the hall's rules."""


class BidNotResting(PricingError):
    """An amendment or cancel of a bid that is filled, cancelled, expired or rejected."""

    def __init__(self, bid_id: str, status: str) -> None:
        super().__init__(f"bid {bid_id} is {status}; only a resting bid can change")
        self.message_zh = (
            f"出价 {bid_id} {_STATUS_ZH.get(status, status)}，只有挂单中的出价可以修改"
        )


_STATUS_ZH = {"filled": "已成交", "cancelled": "已撤销", "expired": "已过期", "rejected": "已拒绝"}


MAX_PRICE_YUAN = Decimal(1000)
MAX_QUANTITY_KG = Decimal(1_000_000)

Yuan = Annotated[Decimal, Field(gt=0, le=MAX_PRICE_YUAN, allow_inf_nan=False)]
Kg = Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY_KG, allow_inf_nan=False)]


class BidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bid_id: Identifier | None = Field(
        default=None, description="Your id for the bid; sending it again never places it twice"
    )
    variety: str
    grade: Grade
    price_yuan_per_kg: Yuan
    quantity_kg: Kg
    min_lot_kg: Kg | None = Field(default=None, description="Take no smaller lot than this")
    destination: str = Field(default="", max_length=64)
    cold_chain: bool = False
    expires_at: datetime | None = Field(
        default=None, description="Default: the end of today's trading day (midnight, UTC+8)"
    )


class AmendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_yuan_per_kg: Yuan | None = None
    quantity_kg: Kg | None = Field(default=None, description="The new remaining quantity")


class LotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variety: str
    grade: Grade
    reason: str = Field(default="", max_length=200)


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variety: str
    grade: Grade
    reserve_yuan_per_kg: Yuan


def _api(request: Request) -> PricingApi:
    api: PricingApi = request.app.state.api
    return api


Api = Annotated[PricingApi, Depends(_api)]


def _account(api: Api, authorization: Annotated[str | None, Header()] = None) -> Account:
    return api.accounts.authenticate(authorization)


Me = Annotated[Account, Depends(_account)]

_REFUSALS: Refusals = {
    NotAuthenticated: (401, "not_authenticated"),
    Forbidden: (403, "forbidden"),
    UnknownBid: (404, "unknown_bid"),
    UnknownBoardLine: (404, "unknown_board_line"),
    UnknownVariety: (422, "unknown_variety"),
    UnitError: (422, "invalid_amount"),
    InvalidBid: (422, "invalid_bid"),
    CreditExceeded: (409, "credit_exceeded"),
    BidNotResting: (409, "bid_not_resting"),
    PricingError: (409, "pricing_rule"),
    PublishFailed: (503, "broker_unavailable"),
}


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else f"{fen_to_yuan(fen):.2f}"


def _kg(grams: int) -> str:
    return f"{g_to_kg(grams):f}"


def bid_json(bid: BidUpdated) -> dict[str, Any]:
    return {
        "bid_id": bid.bid_id,
        "book": bid.book,
        "variety": bid.variety,
        "grade": bid.grade.value,
        "status": bid.status,
        "price_yuan_per_kg": _yuan(bid.price_fen_per_kg),
        "quantity_kg": _kg(bid.quantity_g),
        "filled_kg": _kg(bid.filled_g),
        "remaining_kg": _kg(bid.remaining_g),
        "amount_yuan": _yuan(bid.amount_fen),
        "reason": bid.reason,
        "updated_at": bid.occurred_at.isoformat(),
    }


def pending_json(bid: PlaceBid) -> dict[str, Any]:
    return {
        "bid_id": bid.bid_id,
        "book": book_key(bid.variety, bid.grade),
        "variety": bid.variety,
        "grade": bid.grade.value,
        "status": "pending",
        "price_yuan_per_kg": _yuan(bid.price_fen_per_kg),
        "quantity_kg": _kg(bid.quantity_g),
        "filled_kg": "0",
        "remaining_kg": _kg(bid.quantity_g),
        "amount_yuan": "0.00",
        "reason": "",
        "updated_at": bid.occurred_at.isoformat(),
    }


def trade_json(trade: TradeExecuted) -> dict[str, Any]:
    return {
        "trade_id": trade.trade_id,
        "lot_id": trade.lot_id,
        "farmer_id": trade.farmer_id,
        "bid_id": trade.bid_id,
        "variety": trade.variety,
        "grade": trade.grade.value,
        "crates": trade.crates,
        "weight_kg": _kg(trade.weight_g),
        "price_yuan_per_kg": _yuan(trade.price_fen_per_kg),
        "amount_yuan": _yuan(trade.amount_fen),
        "destination": trade.destination,
        "cold_chain": trade.cold_chain,
        "occurred_at": trade.occurred_at.isoformat(),
    }


def end_of_trading_day(now: datetime) -> datetime:
    local = now.astimezone(HALL_TIME)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC)


def _send(api: PricingApi, book: str, command: Message) -> None:
    api.publisher.publish(BOOK_COMMANDS, book, command)
    COMMANDS.labels(type(command).__name__).inc()


def _own_bid(api: PricingApi, me: Account, bid_id: str) -> BidUpdated | None:
    """The merchant's bid as last reported, None when it was sent but not reported yet."""
    owner = api.ledger.owner(bid_id)
    if owner is None:
        raise UnknownBid(f"no bid {bid_id}")
    if owner != me.merchant_id:
        raise Forbidden(f"bid {bid_id} is another merchant's")
    bid = api.ledger.bid_of(me.merchant_id, bid_id)
    if bid is not None and bid.status != "resting":
        raise BidNotResting(bid_id, bid.status)
    return bid


def _cooperative(me: Account) -> None:
    if me.role != "cooperative":
        raise Forbidden("only the cooperative's account may do this")


def create_app(api: PricingApi, extra: Any = None) -> FastAPI:
    """``extra(app)`` may add routes (the board stream and pages) before the app is served."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        api.feed.start()
        for reader in api.readers:
            reader.start()
        for watch in (api.broker, api.memory):
            if watch is not None:
                watch.start()
        yield
        for watch in (api.broker, api.memory):
            if watch is not None:
                await asyncio.to_thread(watch.stop)
        for reader in api.readers:
            await asyncio.to_thread(reader.stop)
        await asyncio.to_thread(api.feed.stop)

    app = FastAPI(title="Melon Hall pricing", lifespan=lifespan)
    app.state.api = api
    install_error_handlers(app, _REFUSALS, lambda code: REJECTED_BIDS.labels(code).inc())
    refusals = documented(_REFUSALS)
    # The stream and the pages first, so /board/stream is not taken for a board line.
    pages.install(app, api.feed)

    @app.get("/me", responses=refusals)
    def me(me: Me, api: Api) -> dict[str, Any]:
        """Your account and what is left of your purchase limit."""
        credit = api.credit.credit(me)
        return {
            "merchant_id": me.merchant_id,
            "name": me.name,
            "role": me.role,
            "credit_limit_yuan": _yuan(credit.limit_fen),
            "committed_yuan": _yuan(credit.committed_fen),
            "spent_yuan": _yuan(credit.spent_fen),
            "remaining_yuan": _yuan(credit.remaining_fen),
        }

    @app.post("/bids", status_code=202, responses=refusals)
    def place_bid(body: BidRequest, me: Me, api: Api) -> dict[str, Any]:
        """Send a bid to its book; the matcher fills it against graded lots."""
        variety = check_variety(body.variety)
        price = yuan_to_fen(body.price_yuan_per_kg)
        quantity = kg_to_g(body.quantity_kg)
        min_lot = None if body.min_lot_kg is None else kg_to_g(body.min_lot_kg)
        if min_lot is not None and min_lot > quantity:
            raise InvalidBid("the minimum lot is larger than the quantity")
        now = datetime.now(UTC)
        expires = body.expires_at or end_of_trading_day(now)
        if expires.tzinfo is None:
            raise InvalidBid("expires_at needs a time zone, e.g. 2026-08-12T18:00:00+08:00")
        if expires <= now:
            raise InvalidBid("expires_at is in the past")
        bid_id = body.bid_id or f"B-{uuid.uuid4().hex[:12]}"
        owner = api.ledger.owner(bid_id)
        if owner is not None and owner != me.merchant_id:
            raise Forbidden(f"bid id {bid_id} is taken by another merchant")
        book = book_key(variety, body.grade)
        command = PlaceBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=me.merchant_id,
            variety=variety,
            grade=body.grade,
            price_fen_per_kg=price,
            quantity_g=quantity,
            min_lot_g=min_lot,
            destination=body.destination,
            cold_chain=body.cold_chain,
            expires_at=expires,
        )
        if owner is None:
            with api.credit.reserving(me, bid_id, amount_fen(quantity, price)):
                _send(api, book, command)
                api.ledger.sent(command)
        else:
            _send(api, book, command)  # a repeat: the book ignores a bid id it has seen
        return {"bid_id": bid_id, "book": book, "status": "accepted", "expires_at": expires}

    @app.patch("/bids/{bid_id}", status_code=202, responses=refusals)
    def amend_bid(bid_id: Identifier, body: AmendRequest, me: Me, api: Api) -> dict[str, Any]:
        """Change your resting bid's price or remaining quantity."""
        if body.price_yuan_per_kg is None and body.quantity_kg is None:
            raise InvalidBid("an amendment changes the price, the quantity or both")
        bid = _own_bid(api, me, bid_id)
        if bid is None:
            raise PricingError(f"bid {bid_id} has not reached its book yet; try again shortly")
        price = None if body.price_yuan_per_kg is None else yuan_to_fen(body.price_yuan_per_kg)
        quantity = None if body.quantity_kg is None else kg_to_g(body.quantity_kg)
        command = AmendBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=me.merchant_id,
            variety=bid.variety,
            grade=bid.grade,
            price_fen_per_kg=price,
            quantity_g=quantity,
        )
        cost = amount_fen(
            quantity if quantity is not None else bid.remaining_g,
            price if price is not None else bid.price_fen_per_kg,
        )
        with api.credit.reserving(me, bid_id, cost):
            _send(api, bid.book, command)
        return {"bid_id": bid_id, "book": bid.book, "status": "amend requested"}

    @app.post("/bids/{bid_id}/cancel", status_code=202, responses=refusals)
    def cancel_bid(bid_id: Identifier, me: Me, api: Api) -> dict[str, Any]:
        """Ask the book to withdraw what is left of your resting bid."""
        bid = _own_bid(api, me, bid_id)
        if bid is None:
            raise PricingError(f"bid {bid_id} has not reached its book yet; try again shortly")
        command = CancelBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=me.merchant_id,
            variety=bid.variety,
            grade=bid.grade,
        )
        _send(api, bid.book, command)
        return {"bid_id": bid_id, "book": bid.book, "status": "cancel requested"}

    @app.get("/me/bids", responses=refusals)
    def my_bids(me: Me, api: Api) -> list[dict[str, Any]]:
        """Your bids, newest first; a bid the matcher has not reported yet shows as pending."""
        pending = [pending_json(bid) for bid in api.ledger.pending_of(me.merchant_id)]
        return pending + [bid_json(bid) for bid in api.ledger.bids_of(me.merchant_id)]

    @app.get("/me/trades", responses=refusals)
    def my_trades(me: Me, api: Api) -> list[dict[str, Any]]:
        return [trade_json(trade) for trade in api.ledger.trades_of(me.merchant_id)]

    @app.get("/trades/{trade_id}", responses=refusals)
    def get_trade(trade_id: str, me: Me, api: Api) -> dict[str, Any]:
        trade = api.ledger.find_trade(trade_id)
        if trade is None:
            raise UnknownBid(f"no trade {trade_id}")
        if trade.merchant_id != me.merchant_id and me.role != "cooperative":
            raise Forbidden(f"trade {trade_id} is another merchant's")
        return trade_json(trade)

    @app.post("/lots/{lot_id}/withdraw", status_code=202, responses=refusals)
    def withdraw_lot(lot_id: Identifier, body: LotRequest, me: Me, api: Api) -> dict[str, Any]:
        """The cooperative takes what is left of a lot off its book."""
        _cooperative(me)
        book = book_key(check_variety(body.variety), body.grade)
        command = WithdrawLot(
            correlation_id=lot_id,
            lot_id=lot_id,
            variety=body.variety,
            grade=body.grade,
            withdrawn_by=me.merchant_id,
            reason=body.reason,
        )
        _send(api, book, command)
        return {"lot_id": lot_id, "book": book, "status": "withdrawal requested"}

    @app.put("/lots/{lot_id}/reserve", status_code=202, responses=refusals)
    def set_reserve(lot_id: Identifier, body: ReserveRequest, me: Me, api: Api) -> dict[str, Any]:
        """The cooperative sets one lot's reserve price instead of its grade's floor."""
        _cooperative(me)
        book = book_key(check_variety(body.variety), body.grade)
        command = SetLotReserve(
            correlation_id=lot_id,
            lot_id=lot_id,
            variety=body.variety,
            grade=body.grade,
            reserve_fen_per_kg=yuan_to_fen(body.reserve_yuan_per_kg),
            set_by=me.merchant_id,
        )
        _send(api, book, command)
        return {"lot_id": lot_id, "book": book, "status": "reserve requested"}

    @app.get("/board")
    def board(api: Api) -> dict[str, Any]:
        """The price board: one line per variety x grade that has seen a lot or a bid."""
        return {"lines": [line_view(line) for line in api.board.lines()]}

    @app.get("/board/{variety}/{grade}", responses=refusals)
    def board_line(variety: str, grade: Grade, api: Api) -> dict[str, Any]:
        return line_view(api.board.line(book_key(check_variety(variety), grade)))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz(api: Api) -> JSONResponse:
        """200 ``ok``; 503 ``starting`` naming the readers still catching up, or ``degraded``
        while the broker does not answer (the board can be read, no bid can be taken)."""
        readers = [*api.readers, *([api.feed.reader] if api.feed.reader is not None else [])]
        waiting = {r.name: state for r in readers if (state := not_ready(r))}
        degraded = {} if api.broker is None else api.broker.degraded()
        code, body = health(waiting, degraded)
        return JSONResponse(status_code=code, content=body)

    if extra is not None:
        extra(app)
    return app
