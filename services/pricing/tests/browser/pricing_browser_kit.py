"""What the trading hall's browser tests share: the pages on a real board feed under uvicorn, and a
small in-memory merchant API behind them.

The merchant API here is a stand-in with the endpoints and answers the merchant page is written
against (tokens, ``/me``, bids, amend, cancel, trades, credit, ``{error, detail}`` refusals). It
keeps bids resting at once and fills them when a test says so, and it records every request, so
a test can check what the page sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from melon_contracts.events import BoardUpdated, DepthLevel
from melon_contracts.reference import VARIETIES, Grade, Identifier
from pricing.adapters.board_feed import BoardFeed
from pricing.entrypoints import pages

TOKEN = "tok-lanzhou-7f3a"
OTHER_TOKEN = "tok-wuwei-11c2"


def hall_today() -> date:
    """Today in the hall (UTC+8), the trading day a fresh line belongs to."""
    return (datetime.now(UTC) + timedelta(hours=8)).date()


_sequence = iter(range(1, 1_000_000))


def board_line(
    variety: str = "xizhoumi",
    grade: Grade = Grade.CLASS_I,
    *,
    best_bid: int | None = 560,
    bids: int = 2,
    depth_g: int = 800_000,
    offered_g: int = 1_250_500,
    last: int | None = 550,
    high: int | None = 580,
    low: int | None = 520,
    vwap: int | None = 553,
    volume_today_g: int = 3_400_000,
    previous_close: int | None = 520,
    change: int | None = 30,
    trading_day: date | None = None,
) -> BoardUpdated:
    """A board line as the matcher publishes it; each call is newer than the one before."""
    n = next(_sequence)
    return BoardUpdated(
        correlation_id=f"B-{n}",
        occurred_at=datetime.now(UTC),
        book=f"{variety}.{grade.value}",
        variety=variety,
        grade=grade,
        best_bid_fen_per_kg=best_bid,
        bids_resting=bids,
        bid_depth_g=depth_g,
        depth=(
            ()
            if best_bid is None
            else (DepthLevel(price_fen_per_kg=best_bid, bids=bids, quantity_g=depth_g),)
        ),
        lots_resting=1 if offered_g else 0,
        offered_g=offered_g,
        last_price_fen_per_kg=last,
        volume_g=volume_today_g + 10_000_000,
        trades=n,
        trading_day=trading_day or hall_today(),
        high_fen_per_kg=high,
        low_fen_per_kg=low,
        vwap_fen_per_kg=vwap,
        volume_g_today=volume_today_g,
        amount_fen_today=0 if vwap is None else volume_today_g * vwap // 1000,
        trades_today=3,
        previous_close_fen_per_kg=previous_close,
        change_fen_per_kg=change,
    )


def every_book() -> list[BoardUpdated]:
    """Twelve books, every variety x grade, with figures as wide as the wall will see."""
    return [
        board_line(
            variety,
            grade,
            best_bid=1_288,
            bids=128,
            depth_g=123_456_500,
            offered_g=98_765_500,
            last=1_299,
            high=1_350,
            low=1_201,
            vwap=1_276,
            volume_today_g=234_567_500,
            previous_close=1_199,
            change=-100 if grade is Grade.CLASS_II else 100,
        )
        for variety in VARIETIES
        for grade in Grade
    ]


# -- the stand-in merchant API ------------------------------------------------------------------


@dataclass
class Merchant:
    merchant_id: str
    name: str
    credit_limit: Decimal


@dataclass
class Bid:
    bid_id: str
    merchant_id: str
    variety: str
    grade: str
    price: Decimal
    quantity: Decimal
    filled: Decimal = Decimal(0)
    status: str = "resting"
    reason: str = ""
    min_lot: Decimal | None = None
    destination: str = ""
    cold_chain: bool = False

    @property
    def remaining(self) -> Decimal:
        return Decimal(0) if self.status != "resting" else self.quantity - self.filled

    def view(self) -> dict[str, Any]:
        return {
            "bid_id": self.bid_id,
            "book": f"{self.variety}.{self.grade}",
            "variety": self.variety,
            "grade": self.grade,
            "status": self.status,
            "price_yuan_per_kg": f"{self.price:.2f}",
            "quantity_kg": str(self.quantity),
            "filled_kg": str(self.filled),
            "remaining_kg": str(self.remaining),
            "reason": self.reason,
        }


@dataclass
class Sent:
    """A request the page sent, as the API received it."""

    method: str
    path: str
    authorization: str | None
    body: Any


class Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str, detail_zh: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.detail_zh = status, code, detail, detail_zh


@dataclass
class Desk:
    """The merchant API's state: merchants by token, their bids and trades."""

    merchants: dict[str, Merchant] = field(
        default_factory=lambda: {
            TOKEN: Merchant("M-LZ-01", "兰州瓜果商行", Decimal("50000.00")),
            OTHER_TOKEN: Merchant("M-WW-02", "武威果业", Decimal("20000.00")),
        }
    )
    bids: dict[str, Bid] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Sent] = field(default_factory=list)
    refusals: dict[tuple[str, str], Refusal] = field(default_factory=dict)
    """The next request with this method and path gets this refusal instead of an answer."""
    lose_next_answer: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merchant(self, authorization: str | None) -> Merchant:
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not authorization.startswith("Bearer "):
            raise Refusal(401, "missing_token", "send Authorization: Bearer <token>")
        if token not in self.merchants:
            raise Refusal(401, "invalid_token", "unknown or revoked token")
        return self.merchants[token]

    def spent(self, merchant: Merchant) -> Decimal:
        return sum(
            (
                Decimal(t["amount_yuan"])
                for t in self.trades
                if t["merchant_id"] == merchant.merchant_id
            ),
            Decimal(0),
        )

    def committed(self, merchant: Merchant) -> Decimal:
        return sum(
            (
                bid.price * bid.remaining
                for bid in self.bids.values()
                if bid.merchant_id == merchant.merchant_id
            ),
            Decimal(0),
        )

    def remaining(self, merchant: Merchant) -> Decimal:
        return merchant.credit_limit - self.committed(merchant) - self.spent(merchant)

    def me(self, merchant: Merchant) -> dict[str, Any]:
        money = {
            "credit_limit_yuan": merchant.credit_limit,
            "committed_yuan": self.committed(merchant),
            "spent_yuan": self.spent(merchant),
            "remaining_yuan": self.remaining(merchant),
        }
        return {
            "merchant_id": merchant.merchant_id,
            "name": merchant.name,
            **{key: f"{value:.2f}" for key, value in money.items()},
        }

    def rest(self, token: str, bid_id: str, **details: Any) -> Bid:
        """A bid already resting in its book (placed earlier, from another device)."""
        bid = Bid(bid_id=bid_id, merchant_id=self.merchants[token].merchant_id, **details)
        self.bids[bid_id] = bid
        return bid

    def fill(self, bid_id: str, weight_kg: str, lot_id: str = "L-0001", crates: int = 20) -> None:
        """The matcher sold crates of a lot to this bid."""
        with self.lock:
            bid = self.bids[bid_id]
            weight = Decimal(weight_kg)
            bid.filled += weight
            if bid.filled >= bid.quantity:
                bid.status = "filled"
            self.trades.append(
                {
                    "trade_id": f"T-{bid.variety}.{bid.grade}-{len(self.trades) + 1}",
                    "merchant_id": bid.merchant_id,
                    "lot_id": lot_id,
                    "variety": bid.variety,
                    "grade": bid.grade,
                    "crates": crates,
                    "weight_kg": str(weight),
                    "price_yuan_per_kg": f"{bid.price:.2f}",
                    "amount_yuan": f"{(bid.price * weight).quantize(Decimal('0.01')):.2f}",
                    "destination": bid.destination,
                    "cold_chain": bid.cold_chain,
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
            )

    def sent(self, method: str, path: str) -> list[Sent]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


class BidBody(BaseModel):
    bid_id: Identifier
    variety: str
    grade: Grade
    price_yuan_per_kg: Decimal = Field(gt=0)
    quantity_kg: Decimal = Field(gt=0)
    min_lot_kg: Decimal | None = Field(default=None, gt=0)
    destination: str = ""
    cold_chain: bool = False


class AmendBody(BaseModel):
    price_yuan_per_kg: Decimal | None = Field(default=None, gt=0)
    quantity_kg: Decimal | None = Field(default=None, gt=0)


def merchant_api(desk: Desk) -> FastAPI:
    """The merchant endpoints the page calls, answering as the pricing API is specified to."""
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path == "/me" or path.startswith(("/me/", "/bids")):
            raw = await request.body()
            desk.requests.append(
                Sent(
                    request.method,
                    request.url.path,
                    request.headers.get("authorization"),
                    json.loads(raw) if raw else None,
                )
            )
            refusal = desk.refusals.pop((request.method, request.url.path), None)
            if refusal is not None:
                return _refused(refusal)
        return await call_next(request)

    @app.exception_handler(Refusal)
    async def refused(_: Request, refusal: Refusal) -> JSONResponse:
        return _refused(refusal)

    def own(request: Request, bid_id: str) -> tuple[Merchant, Bid]:
        merchant = desk.merchant(request.headers.get("authorization"))
        bid = desk.bids.get(bid_id)
        if bid is None:
            raise Refusal(404, "unknown_bid", f"no bid {bid_id}")
        if bid.merchant_id != merchant.merchant_id:
            raise Refusal(403, "not_your_bid", f"bid {bid_id} is not yours")
        if bid.status != "resting":
            raise Refusal(409, "bid_not_resting", f"bid {bid_id} is {bid.status}")
        return merchant, bid

    @app.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return desk.me(desk.merchant(request.headers.get("authorization")))

    @app.get("/me/bids")
    def my_bids(request: Request) -> list[dict[str, Any]]:
        merchant = desk.merchant(request.headers.get("authorization"))
        return [b.view() for b in desk.bids.values() if b.merchant_id == merchant.merchant_id]

    @app.get("/me/trades")
    def my_trades(request: Request) -> list[dict[str, Any]]:
        merchant = desk.merchant(request.headers.get("authorization"))
        return [t for t in desk.trades if t["merchant_id"] == merchant.merchant_id]

    @app.post("/bids", status_code=202)
    def place(body: BidBody, request: Request) -> Any:
        merchant = desk.merchant(request.headers.get("authorization"))
        with desk.lock:
            if body.bid_id not in desk.bids:
                cost = body.price_yuan_per_kg * body.quantity_kg
                if cost > desk.remaining(merchant):
                    raise Refusal(
                        409,
                        "bid_exceeds_credit",
                        f"the bid needs {cost:.2f} yuan; {desk.remaining(merchant):.2f} remain",
                        f"出价需 {cost:.2f} 元，剩余额度 {desk.remaining(merchant):.2f} 元",
                    )
                desk.bids[body.bid_id] = Bid(
                    bid_id=body.bid_id,
                    merchant_id=merchant.merchant_id,
                    variety=body.variety,
                    grade=body.grade.value,
                    price=body.price_yuan_per_kg,
                    quantity=body.quantity_kg,
                    min_lot=body.min_lot_kg,
                    destination=body.destination,
                    cold_chain=body.cold_chain,
                )
        if desk.lose_next_answer:
            desk.lose_next_answer = False
            return JSONResponse({"error": "broker_unavailable", "detail": "no ack"}, 503)
        return {"bid_id": body.bid_id, "status": "accepted"}

    @app.patch("/bids/{bid_id}", status_code=202)
    def amend(bid_id: str, body: AmendBody, request: Request) -> dict[str, Any]:
        _, bid = own(request, bid_id)
        if body.price_yuan_per_kg is not None:
            bid.price = body.price_yuan_per_kg
        if body.quantity_kg is not None:
            bid.quantity = bid.filled + body.quantity_kg
        return {"bid_id": bid_id, "status": "amend requested"}

    @app.post("/bids/{bid_id}/cancel", status_code=202)
    def cancel(bid_id: str, request: Request) -> dict[str, Any]:
        _, bid = own(request, bid_id)
        bid.status = "cancelled"
        bid.reason = "cancelled by the merchant"
        return {"bid_id": bid_id, "status": "cancel requested"}

    return app


def _refused(refusal: Refusal) -> JSONResponse:
    body = {"error": refusal.code, "detail": refusal.detail}
    if refusal.detail_zh:
        body["detail_zh"] = refusal.detail_zh
    return JSONResponse(body, status_code=refusal.status)


# -- serving ----------------------------------------------------------------------------------


@dataclass
class Hall:
    """The pages on a live board feed, and the merchant API beside them."""

    url: str
    feed: BoardFeed
    desk: Desk

    def publish(self, *lines: BoardUpdated) -> None:
        for line in lines:
            assert self.feed.publish(line)


@dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def serve(app: Any) -> Served:
    """Run an ASGI app under uvicorn in a thread, on 127.0.0.1 and a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="pricing-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the pricing pages did not start under uvicorn")
        time.sleep(0.01)
    return Served(server, thread, f"http://127.0.0.1:{port}")


def start_hall() -> Iterator[Hall]:
    feed = BoardFeed()
    desk = Desk()
    app = merchant_api(desk)
    pages.install(app, feed)
    served = serve(app)
    try:
        yield Hall(url=served.url, feed=feed, desk=desk)
    finally:
        feed.stop()  # ends the open streams so the server stops at once
        served.stop()
