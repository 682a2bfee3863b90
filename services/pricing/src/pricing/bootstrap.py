"""Composition root of the pricing API: the only place its adapters are chosen."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from melon_contracts.commands import PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import BidUpdated, BoardUpdated, TradeExecuted
from melon_contracts.health import BrokerWatch
from melon_contracts.topics import BID_UPDATES, BOOK_COMMANDS, TRADES, TopicSpec
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, Publisher, TopicReader
from melon_contracts.units import amount_fen
from pricing.accounts import Accounts, CreditBook
from pricing.adapters.board_feed import BoardFeed
from pricing.adapters.board_view import Board
from pricing.adapters.memory import MemoryRelease
from pricing.settings import Settings


@dataclass
class MerchantLedger:
    """Each merchant's bids (latest state) and trades, as the topics tell them."""

    bids: dict[str, dict[str, BidUpdated]] = field(default_factory=dict)
    trades: dict[str, dict[str, TradeExecuted]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    """bid id -> merchant id, for every bid seen, also those sent but not yet reported."""
    pending: dict[str, PlaceBid] = field(default_factory=dict)
    """Bids sent by this API that the matcher has not reported yet."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def bid(self, update: BidUpdated) -> bool:
        """Keep the newest state of a bid; False when ``update`` is older than what is kept."""
        with self._lock:
            mine = self.bids.setdefault(update.merchant_id, {})
            current = mine.get(update.bid_id)
            if current is not None and current.occurred_at > update.occurred_at:
                return False
            mine[update.bid_id] = update
            self.owners[update.bid_id] = update.merchant_id
            self.pending.pop(update.bid_id, None)
            return True

    def trade(self, trade: TradeExecuted) -> None:
        with self._lock:
            self.trades.setdefault(trade.merchant_id, {})[trade.trade_id] = trade

    def sent(self, bid: PlaceBid) -> bool:
        """Keep a bid that is on its way to the book; False once the matcher reported it."""
        with self._lock:
            self.owners.setdefault(bid.bid_id, bid.merchant_id)
            if bid.bid_id in self.bids.get(bid.merchant_id, {}):
                return False
            self.pending[bid.bid_id] = bid
            return True

    def pending_of(self, merchant_id: str) -> list[PlaceBid]:
        with self._lock:
            mine = [bid for bid in self.pending.values() if bid.merchant_id == merchant_id]
            return sorted(mine, key=lambda bid: bid.occurred_at, reverse=True)

    def owner(self, bid_id: str) -> str | None:
        with self._lock:
            return self.owners.get(bid_id)

    def bids_of(self, merchant_id: str) -> list[BidUpdated]:
        with self._lock:
            return sorted(
                self.bids.get(merchant_id, {}).values(), key=lambda b: b.occurred_at, reverse=True
            )

    def bid_of(self, merchant_id: str, bid_id: str) -> BidUpdated | None:
        with self._lock:
            return self.bids.get(merchant_id, {}).get(bid_id)

    def trades_of(self, merchant_id: str) -> list[TradeExecuted]:
        with self._lock:
            return sorted(
                self.trades.get(merchant_id, {}).values(),
                key=lambda t: t.occurred_at,
                reverse=True,
            )

    def find_trade(self, trade_id: str) -> TradeExecuted | None:
        with self._lock:
            for trades in self.trades.values():
                if trade_id in trades:
                    return trades[trade_id]
            return None


@dataclass
class PricingApi:
    """What the HTTP layer needs: where commands go, the board, accounts, credit, bids, trades."""

    publisher: Publisher
    accounts: Accounts = field(default_factory=Accounts)
    board: Board = field(default_factory=Board)
    credit: CreditBook = field(default_factory=CreditBook)
    feed: BoardFeed = field(default_factory=BoardFeed)
    ledger: MerchantLedger = field(default_factory=MerchantLedger)
    readers: list[TopicReader] = field(default_factory=list)
    broker: BrokerWatch | None = None
    """Whether the broker answers; None in tests without one."""
    memory: MemoryRelease | None = None
    """Hands freed memory back after many board watchers left; None in tests."""

    def on_message(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if isinstance(message, BoardUpdated):
            self.feed.publish(message)
        elif isinstance(message, BidUpdated):
            if self.ledger.bid(message):
                open_cost = 0
                if message.status == "resting":
                    open_cost = amount_fen(message.remaining_g, message.price_fen_per_kg)
                self.credit.bid_state(message.merchant_id, message.bid_id, open_cost)
        elif isinstance(message, TradeExecuted):
            self.ledger.trade(message)
            self.credit.traded(message.merchant_id, message.trade_id, message.amount_fen)
        elif isinstance(message, PlaceBid) and self.ledger.sent(message):
            # On book.commands but not yet reported (this API or another one sent it, perhaps
            # before a restart): pending, and holding its cost, until the matcher reports it.
            cost = amount_fen(message.quantity_g, message.price_fen_per_kg)
            self.credit.hold(message.merchant_id, message.bid_id, cost)


def build(settings: Settings) -> PricingApi:
    publisher = KafkaPublisher("pricing", settings.bootstrap)
    board = Board()
    feed = BoardFeed.from_kafka(settings.bootstrap, board=board, dead_letters=publisher)
    api = PricingApi(
        publisher=publisher,
        accounts=Accounts.load(Path(settings.merchants_file)),
        board=board,
        feed=feed,
        broker=BrokerWatch(settings.bootstrap),
        memory=MemoryRelease(lambda: feed.subscribers),
    )
    # Groupless readers replay the topics on start: every bid sent, the latest state of every
    # bid and every trade, so credit, "my bids" (pending ones too) and "my trades" are whole
    # again after a restart. The board has its own reader in the feed, which fans each line out
    # to the pages. What they cannot use goes to the dead-letter topics once, not again on
    # each replay.
    api.readers.append(
        TopicReader(
            "pricing",
            settings.bootstrap,
            [BOOK_COMMANDS, BID_UPDATES, TRADES],
            api.on_message,
            dead_letters=publisher,
        )
    )
    return api


def build_for_tests(accounts: Accounts | None = None) -> PricingApi:
    board = Board()
    return PricingApi(
        publisher=InMemoryPublisher("pricing"),
        accounts=accounts or Accounts(),
        board=board,
        feed=BoardFeed(board),
    )
