"""What the trading hall's browser tests share: the real pricing API and its pages under uvicorn,
two merchants with known tokens, and a stand-in for the matcher.

The API is the one the hall runs, built by ``build_for_tests``: its book commands go to an
in-memory publisher instead of Kafka, and what the matcher publishes on ``bid.updates``,
``trades`` and ``board.updates`` reaches it through ``api.on_message``, as the topic readers
would hand it over. ``Matcher`` answers the commands the page made the API send, so a test says
when a book takes a bid, fills it or cancels it, and sees the page catch up.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from playwright.sync_api import Page

from melon_contracts.commands import AmendBid, CancelBid, PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, BoardUpdated, DepthLevel, TradeExecuted
from melon_contracts.reference import VARIETIES, Grade, book_key
from melon_contracts.topics import BID_UPDATES, BOARD_UPDATES, BOOK_COMMANDS, TRADES
from melon_contracts.transport import InMemoryPublisher
from melon_contracts.units import amount_fen, kg_to_g, yuan_to_fen
from melon_devkit import browser
from melon_devkit.browser import serve
from pricing.accounts import Accounts
from pricing.adapters.board_feed import BoardFeed
from pricing.bootstrap import PricingApi, build_for_tests
from pricing.domain.errors import UnknownBoardLine
from pricing.entrypoints.http import create_app


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


# -- the merchants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merchant:
    """A merchant account of the test hall, with the token the cooperative gave them."""

    merchant_id: str
    name: str
    token: str
    credit_limit_fen: int


LANZHOU = Merchant("M-LZ-01", "兰州瓜果商行", "tok-lanzhou-7f3a", 5_000_000)  # 50 000 yuan
WUWEI = Merchant("M-WW-02", "武威果业", "tok-wuwei-11c2", 2_000_000)  # 20 000 yuan
MERCHANTS = (LANZHOU, WUWEI)


# -- the matcher's part -------------------------------------------------------------------------


def _renewed(message: Message, **changes: Any) -> Any:
    """A new message like ``message`` with ``changes``, validated, with its own id and time."""
    fields = message.model_dump(exclude={"event_id", "occurred_at"})
    return type(message).model_validate({**fields, **changes})


class Matcher:
    """Answers the book commands the API sent, as the matcher would, through ``api.on_message``.

    It keeps every bid as it last reported it and ignores a bid id it has seen, as the books do.
    Each answer ends with the book's new board line: that is what makes an open desk refresh.
    """

    def __init__(self, api: PricingApi) -> None:
        self.api = api
        self.bids: dict[str, BidUpdated] = {}
        self._orders: dict[str, PlaceBid] = {}
        self._answered = 0
        self._trades: defaultdict[str, int] = defaultdict(int)

    def commands(self) -> list[Message]:
        """Every book command the API has sent, oldest first."""
        publisher = self.api.publisher
        assert isinstance(publisher, InMemoryPublisher)
        return publisher.on(BOOK_COMMANDS)

    def answer(self) -> list[Message]:
        """Take every command sent since the last answer: place, amend, cancel. Returns them."""
        commands = self.commands()[self._answered :]
        self._answered += len(commands)
        books: set[str] = set()
        for command in commands:
            if isinstance(command, PlaceBid):
                if command.bid_id in self.bids:
                    continue
                self._orders[command.bid_id] = command
                self._report(
                    BidUpdated(
                        correlation_id=command.bid_id,
                        bid_id=command.bid_id,
                        merchant_id=command.merchant_id,
                        book=book_key(command.variety, command.grade),
                        variety=command.variety,
                        grade=command.grade,
                        status="resting",
                        price_fen_per_kg=command.price_fen_per_kg,
                        quantity_g=command.quantity_g,
                        filled_g=0,
                        remaining_g=command.quantity_g,
                        amount_fen=0,
                    )
                )
            elif isinstance(command, AmendBid):
                bid = self.bids[command.bid_id]
                price = command.price_fen_per_kg
                remaining = bid.remaining_g if command.quantity_g is None else command.quantity_g
                self._report(
                    _renewed(
                        bid,
                        price_fen_per_kg=bid.price_fen_per_kg if price is None else price,
                        quantity_g=bid.filled_g + remaining,
                        remaining_g=remaining,
                    )
                )
            elif isinstance(command, CancelBid):
                bid = self.bids[command.bid_id]
                self._report(
                    _renewed(
                        bid, status="cancelled", remaining_g=0, reason="cancelled by the merchant"
                    )
                )
            else:
                continue
            books.add(book_key(command.variety, command.grade))
        for book in sorted(books):
            self._board(book)
        return commands

    def rest(
        self,
        merchant: Merchant,
        bid_id: str,
        *,
        variety: str,
        grade: Grade,
        price_yuan: str,
        quantity_kg: str,
        destination: str = "",
        cold_chain: bool = False,
    ) -> None:
        """A bid placed earlier (from another device) that rests in its book."""
        order = PlaceBid(
            correlation_id=bid_id,
            bid_id=bid_id,
            merchant_id=merchant.merchant_id,
            variety=variety,
            grade=grade,
            price_fen_per_kg=yuan_to_fen(price_yuan),
            quantity_g=kg_to_g(quantity_kg),
            destination=destination,
            cold_chain=cold_chain,
        )
        self._orders[bid_id] = order
        self._report(
            BidUpdated(
                correlation_id=bid_id,
                bid_id=bid_id,
                merchant_id=order.merchant_id,
                book=book_key(variety, grade),
                variety=variety,
                grade=grade,
                status="resting",
                price_fen_per_kg=order.price_fen_per_kg,
                quantity_g=order.quantity_g,
                filled_g=0,
                remaining_g=order.quantity_g,
                amount_fen=0,
            )
        )
        self._board(book_key(variety, grade))

    def fill(
        self,
        bid_id: str,
        weight_kg: str,
        *,
        lot_id: str = "L-0001",
        crates: int = 20,
        board: bool = True,
    ) -> TradeExecuted:
        """Sell crates of a lot to the bid at its price; ``board=False`` holds the book's line
        back, as when the page has not heard of the fill yet."""
        bid = self.bids[bid_id]
        order = self._orders[bid_id]
        weight = kg_to_g(weight_kg)
        assert weight <= bid.remaining_g, "a fill never exceeds what the bid has left"
        self._trades[bid.book] += 1
        sequence = self._trades[bid.book]
        trade = TradeExecuted(
            correlation_id=lot_id,
            trade_id=f"{bid.book}:{sequence}",
            book=bid.book,
            sequence=sequence,
            lot_id=lot_id,
            farmer_id="F-0007",
            bid_id=bid_id,
            merchant_id=bid.merchant_id,
            variety=bid.variety,
            grade=bid.grade,
            crates=crates,
            weight_g=weight,
            price_fen_per_kg=bid.price_fen_per_kg,
            amount_fen=amount_fen(weight, bid.price_fen_per_kg),
            destination=order.destination,
            cold_chain=order.cold_chain,
        )
        self.api.on_message(TRADES, trade.book, trade)
        remaining = bid.remaining_g - weight
        self._report(
            _renewed(
                bid,
                status="resting" if remaining else "filled",
                filled_g=bid.filled_g + weight,
                remaining_g=remaining,
                amount_fen=bid.amount_fen + trade.amount_fen,
            )
        )
        if board:
            self._board(bid.book, trade)
        return trade

    def _report(self, bid: BidUpdated) -> None:
        self.bids[bid.bid_id] = bid
        self.api.on_message(BID_UPDATES, bid.bid_id, bid)

    def _board(self, book: str, trade: TradeExecuted | None = None) -> None:
        """Publish the book's line: its resting bids by price, and the last trade if any."""
        levels: defaultdict[int, list[BidUpdated]] = defaultdict(list)
        for bid in self.bids.values():
            if bid.book == book and bid.status == "resting":
                levels[bid.price_fen_per_kg].append(bid)
        depth = tuple(
            DepthLevel(
                price_fen_per_kg=price,
                bids=len(bids),
                quantity_g=sum(bid.remaining_g for bid in bids),
            )
            for price, bids in sorted(levels.items(), reverse=True)
        )
        try:
            current = self.api.board.line(book)
        except UnknownBoardLine:
            variety, grade = book.split(".")
            current = board_line(
                variety,
                Grade(grade),
                best_bid=None,
                bids=0,
                depth_g=0,
                offered_g=0,
                last=None,
                high=None,
                low=None,
                vwap=None,
                volume_today_g=0,
                previous_close=None,
                change=None,
            )
        changes: dict[str, Any] = {
            "correlation_id": book,
            "best_bid_fen_per_kg": depth[0].price_fen_per_kg if depth else None,
            "bids_resting": sum(level.bids for level in depth),
            "bid_depth_g": sum(level.quantity_g for level in depth),
            "depth": depth,
        }
        if trade is not None:
            changes |= {
                "last_price_fen_per_kg": trade.price_fen_per_kg,
                "trades": current.trades + 1,
                "volume_g": current.volume_g + trade.weight_g,
            }
        line = _renewed(current, **changes)
        self.api.on_message(BOARD_UPDATES, book, line)


# -- what the page sent -------------------------------------------------------------------------


def _merchant_api(method: str, path: str) -> bool:
    return path == "/me" or path.startswith(("/me/", "/bids"))


class Traffic(browser.Traffic):
    """The merchant API calls a page makes (``/me``, ``/me/...``, ``/bids...``), in order."""

    def __init__(self, page: Page) -> None:
        super().__init__(page, keep=_merchant_api)

    def to(self, method: str, path: str) -> list[browser.Sent]:
        return self.sent(path, method)


# -- serving ------------------------------------------------------------------------------------


@dataclass
class Hall:
    """The pricing API with its pages on 127.0.0.1, and the matcher's part beside it."""

    url: str
    api: PricingApi
    matcher: Matcher = field(init=False)

    def __post_init__(self) -> None:
        self.matcher = Matcher(self.api)

    @property
    def feed(self) -> BoardFeed:
        return self.api.feed

    @property
    def publisher(self) -> InMemoryPublisher:
        publisher = self.api.publisher
        assert isinstance(publisher, InMemoryPublisher)
        return publisher

    def publish(self, *lines: BoardUpdated) -> None:
        """Board lines as the API reads them from ``board.updates``."""
        for line in lines:
            self.api.on_message(BOARD_UPDATES, line.book, line)
            assert self.api.board.line(line.book) is line, "an older line than the board holds"

    def commands(self) -> list[Message]:
        return self.matcher.commands()

    def revoke(self, merchant: Merchant) -> None:
        """The cooperative issues the merchant a new token; the old one stops working."""
        self.api.accounts.add(
            merchant.merchant_id,
            merchant.name,
            merchant.credit_limit_fen,
            token=secrets.token_urlsafe(16),
        )


def start_hall() -> Iterator[Hall]:
    """The pricing API the hall runs, for two merchants, without a broker."""
    accounts = Accounts()
    for merchant in MERCHANTS:
        accounts.add(
            merchant.merchant_id, merchant.name, merchant.credit_limit_fen, token=merchant.token
        )
    api = build_for_tests(accounts)
    served = serve(create_app(api))
    try:
        yield Hall(url=served.url, api=api)
    finally:
        api.feed.stop()  # ends the open streams so the server stops at once
        served.stop()
