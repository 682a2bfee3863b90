"""One order book (variety x grade): resting lots and bids, matched by price-time priority.

Rules:
- Bids rank by price (highest first), then by arrival. Lots rank by arrival alone; a new reserve
  price does not change a lot's place.
- A lot may trade only with a bid at or above its reserve price.
- Trade price: the bid's price (pay-as-bid). The reserve is the cooperative's floor, not an asking
  price, so the farmer gets what the merchant offered, whichever side arrived first.
- Lots trade in whole crates: a bid takes as many crates as fit in what it still wants; the crates'
  weight is the lot's remaining weight shared out per crate in integer grams, and the last crate of
  a lot takes the remainder, so the weights sold always add up to the weight weighed.
- A bid fills across lots, oldest first, until its quantity is met; what does not match rests.
  After a command, no resting lot and resting bid could trade with each other: orders whose
  remainder a trade changed are matched again until nothing more trades.
- Minimum lot: a bid with ``min_lot_g`` takes a fill only if it weighs at least ``min_lot_g`` or
  it completes the bid (it is exactly what the bid still wants). Put the other way, a fill must
  weigh at least ``min(min_lot_g, remaining)``. A lot that can give neither is passed over, and
  the lot goes on to the next bid.
- Amend sets the bid's price and its remaining quantity (its quantity becomes filled + remaining).
  A new price or a larger remaining sends the bid to the back of the queue at its (new) price; a
  smaller remaining keeps its place. An amended bid is matched again at once.
- A bid whose ``expires_at`` is at or before a command's ``occurred_at`` leaves the book as
  expired before that command applies: the book's only clock is its commands.
- A lot id or bid id the book holds, or finished on the current or the previous trading day, is a
  duplicate and has no second effect. Older finished ids are forgotten, so the stored book stays
  bounded however long the hall runs; a command redelivered at least a full day late would count
  as new.

The book is deterministic: the same commands in the same order give the same trades, ids, bid
states and board lines, also when the book is stored and restored between any two commands.

Work per command follows what it touches: bids sit in price levels kept in price order, each
level in arrival order, and a level's bids and weight are counted as they change, so nothing is
sorted or summed per command. A lot walks the levels from the best price down to its reserve; a
bid walks the resting lots only when its price reaches the lowest reserve among them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from melon_contracts.events import BidStatus
from melon_contracts.reference import Grade
from melon_contracts.units import amount_fen
from pricing.domain.board import (
    DEPTH_LEVELS,
    HALL_TIME,
    BoardLine,
    DepthLevel,
    Tape,
    trading_day,
)
from pricing.domain.errors import (
    BidExpiresOnArrival,
    BidNotResting,
    LotNotResting,
    NothingToAmend,
    NotYourBid,
    UnknownBid,
    UnknownLot,
)

STATE_LAYOUT = 2
"""Version of the ``to_dict`` layout; 1 was the book before amend, expiry and day figures."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

LotStatus = Literal["sold", "withdrawn"]


def micros(at: datetime) -> int:
    """An aware instant as integer microseconds since the epoch: exact and JSON-friendly."""
    return (at - _EPOCH) // _MICROSECOND


def hall_time(at_us: int) -> str:
    """Microseconds since the epoch as the hall's local time, for reasons people read."""
    return (_EPOCH + timedelta(microseconds=at_us)).astimezone(HALL_TIME).isoformat()


def crate_weight(crates_left: int, net_g_left: int, crates: int) -> int:
    """Grams in ``crates`` of a lot's remaining crates; the last crates take the remainder."""
    if crates == crates_left:
        return net_g_left
    return net_g_left * crates // crates_left


def crates_that_fit(crates_left: int, net_g_left: int, wanted_g: int) -> int:
    """The most whole crates whose weight is at most ``wanted_g``."""
    if wanted_g >= net_g_left:
        return crates_left
    # net*k // left <= wanted  <=>  k <= ((wanted + 1) * left - 1) // net
    return min(crates_left, ((wanted_g + 1) * crates_left - 1) // net_g_left)


@dataclass(slots=True)
class RestingLot:
    """What is left of a lot on offer: crates, grams and the reserve it may not sell below."""

    lot_id: str
    farmer_id: str
    crates: int
    net_g: int
    reserve_fen_per_kg: int


@dataclass(slots=True)
class RestingBid:
    """A merchant's limit order as it stands on the book."""

    bid_id: str
    merchant_id: str
    price_fen_per_kg: int
    remaining_g: int
    min_lot_g: int | None
    destination: str
    cold_chain: bool
    expires_at_us: int | None
    arrival: int
    filled_g: int = 0
    amount_fen: int = 0

    @property
    def quantity_g(self) -> int:
        """What the bid asks for, as last amended: filled so far plus what it still wants."""
        return self.filled_g + self.remaining_g

    def takes(self, weight_g: int) -> bool:
        """The minimum-lot rule: big enough, or exactly what completes the bid."""
        return self.min_lot_g is None or weight_g >= self.min_lot_g or weight_g == self.remaining_g


@dataclass(frozen=True, slots=True)
class FinishedBid:
    """A bid that left the book, kept for the dedupe window so late commands get an answer.

    Stored as a row ``[merchant_id, status, price, quantity_g, filled_g, amount_fen, day]``:
    these are the bulk of a stored book, so they carry no field names and no reason text.
    """

    merchant_id: str
    status: BidStatus
    price_fen_per_kg: int
    quantity_g: int
    filled_g: int
    amount_fen: int
    day: str

    def row(self) -> list[Any]:
        return [
            self.merchant_id,
            self.status,
            self.price_fen_per_kg,
            self.quantity_g,
            self.filled_g,
            self.amount_fen,
            self.day,
        ]


@dataclass(frozen=True, slots=True)
class FinishedLot:
    """A lot that left the book (sold out or withdrawn), kept for the dedupe window."""

    status: LotStatus
    day: str


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade the book made: ``crates`` of ``lot`` to ``bid``; everything ``TradeExecuted`` needs.

    ``reserve_fen_per_kg`` is the lot's reserve when it traded, kept for the audit.
    """

    trade_id: str
    sequence: int
    book: str
    variety: str
    grade: Grade
    lot_id: str
    farmer_id: str
    bid_id: str
    merchant_id: str
    crates: int
    weight_g: int
    price_fen_per_kg: int
    amount_fen: int
    reserve_fen_per_kg: int
    destination: str
    cold_chain: bool


@dataclass(frozen=True, slots=True)
class BidState:
    """Where a bid stands after a command touched it; everything ``BidUpdated`` needs.

    ``quantity_g`` is what the bid asks for as last amended (``filled_g + remaining_g`` while it
    rests); ``amount_fen`` is what its fills cost so far. ``rejected`` is only for a ``PlaceBid``
    the book refused: the bid never rested. A refused amend or cancel reports the bid as it
    stands, with the refusal in ``reason``.
    """

    bid_id: str
    merchant_id: str
    status: BidStatus
    price_fen_per_kg: int
    quantity_g: int
    filled_g: int
    remaining_g: int
    amount_fen: int
    reason: str = ""


@dataclass(slots=True)
class Effects:
    """What one command did, collected while it applies: fills and the last state of each bid."""

    fills: list[Fill] = field(default_factory=list)
    bids: dict[str, BidState] = field(default_factory=dict)
    changed: bool = False

    def note(self, state: BidState) -> None:
        """Keep a bid's latest state; its place is the order in which bids were first touched."""
        self.bids[state.bid_id] = state


def resting_state(bid: RestingBid, reason: str = "") -> BidState:
    return BidState(
        bid_id=bid.bid_id,
        merchant_id=bid.merchant_id,
        status="resting",
        price_fen_per_kg=bid.price_fen_per_kg,
        quantity_g=bid.quantity_g,
        filled_g=bid.filled_g,
        remaining_g=bid.remaining_g,
        amount_fen=bid.amount_fen,
        reason=reason,
    )


def finished_state(bid_id: str, done: FinishedBid, reason: str) -> BidState:
    return BidState(
        bid_id=bid_id,
        merchant_id=done.merchant_id,
        status=done.status,
        price_fen_per_kg=done.price_fen_per_kg,
        quantity_g=done.quantity_g,
        filled_g=done.filled_g,
        remaining_g=0,
        amount_fen=done.amount_fen,
        reason=reason,
    )


@dataclass(slots=True)
class _Level:
    """The bids resting at one price, in arrival order, and the grams they still want.

    The board's view of the level is kept until the level changes, so a board line costs only
    the levels that changed since the last one.
    """

    price: int
    bids: dict[str, RestingBid] = field(default_factory=dict)
    quantity_g: int = 0
    view: DepthLevel | None = None

    def change(self, grams: int) -> None:
        self.quantity_g += grams
        self.view = None

    def depth(self) -> DepthLevel:
        if self.view is None:
            self.view = DepthLevel(self.price, len(self.bids), self.quantity_g)
        return self.view


class Book:
    """The order book of one variety and grade; ``market.apply`` is how commands reach it.

    Mutable on purpose: applying a command changes the book in place. ``to_dict`` / ``from_dict``
    store and restore it losslessly as JSON-ready data.
    """

    def __init__(self, key: str, variety: str, grade: Grade) -> None:
        self.key = key
        self.variety = variety
        self.grade = grade
        self.arrivals = 0
        self.tape = Tape()
        self._lots: dict[str, RestingLot] = {}
        self._reserves: dict[int, int] = {}
        self._offered_g = 0
        self._bids: dict[str, RestingBid] = {}
        self._levels: dict[int, _Level] = {}
        self._prices: list[int] = []
        self._bid_depth_g = 0
        self._expiries: list[tuple[int, str]] = []
        self._finished_bids: dict[str, FinishedBid] = {}
        self._finished_lots: dict[str, FinishedLot] = {}

    def __repr__(self) -> str:
        return f"Book({self.key!r}, {len(self._lots)} lots, {len(self._bids)} bids)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Book):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def lots(self) -> list[RestingLot]:
        """Resting lots in arrival order (the book's own objects: read, do not change)."""
        return list(self._lots.values())

    def bids(self) -> list[RestingBid]:
        """Resting bids in price-time order (the book's own objects: read, do not change)."""
        return [
            bid for price in reversed(self._prices) for bid in self._levels[price].bids.values()
        ]

    def lot(self, lot_id: str) -> RestingLot | None:
        return self._lots.get(lot_id)

    def bid(self, bid_id: str) -> RestingBid | None:
        return self._bids.get(bid_id)

    def remembers_bid(self, bid_id: str) -> bool:
        """The bid rests or finished inside the dedupe window."""
        return bid_id in self._bids or bid_id in self._finished_bids

    def remembers_lot(self, lot_id: str) -> bool:
        """The lot rests or finished inside the dedupe window."""
        return lot_id in self._lots or lot_id in self._finished_lots

    def board(self) -> BoardLine:
        tape = self.tape
        levels = self._levels
        depth = tuple(levels[price].depth() for price in self._prices[: -DEPTH_LEVELS - 1 : -1])
        return BoardLine(
            book=self.key,
            variety=self.variety,
            grade=self.grade,
            best_bid_fen_per_kg=self._prices[-1] if self._prices else None,
            bids_resting=len(self._bids),
            bid_depth_g=self._bid_depth_g,
            depth=depth,
            lots_resting=len(self._lots),
            offered_g=self._offered_g,
            last_price_fen_per_kg=tape.last_price_fen_per_kg,
            volume_g=tape.volume_g,
            trades=tape.trades,
            trading_day=tape.day,
            high_fen_per_kg=tape.high_fen_per_kg,
            low_fen_per_kg=tape.low_fen_per_kg,
            vwap_fen_per_kg=tape.vwap_fen_per_kg,
            volume_g_today=tape.volume_g_today,
            amount_fen_today=tape.amount_fen_today,
            trades_today=tape.trades_today,
            previous_close_fen_per_kg=tape.previous_close_fen_per_kg,
            change_fen_per_kg=tape.change_fen_per_kg,
        )

    def open(self, at: datetime, effects: Effects) -> None:
        """Bring the book to a command's time: roll the trading day, then expire bids."""
        day = trading_day(at)
        if self.tape.roll(day):
            effects.changed = True
            self._forget_before((day - timedelta(days=1)).isoformat())
        now_us = micros(at)
        expiries = self._expiries
        while expiries and expiries[0][0] <= now_us:
            expires_at_us, bid_id = heapq.heappop(expiries)
            bid = self._bids.get(bid_id)
            if bid is not None and bid.expires_at_us == expires_at_us:
                self._finish_bid(bid, "expired", f"expired at {hall_time(expires_at_us)}", effects)
        if len(expiries) > 2 * len(self._bids) + 64:
            self._expiries = self._expiry_heap()

    def offer_lot(
        self,
        lot_id: str,
        farmer_id: str,
        crates: int,
        net_g: int,
        reserve_fen_per_kg: int,
        effects: Effects,
    ) -> bool:
        """Match a lot against the bids and rest the rest; False for a lot id seen before."""
        if self.remembers_lot(lot_id):
            return False
        lot = RestingLot(lot_id, farmer_id, crates, net_g, reserve_fen_per_kg)
        self._rest_lot(lot)
        effects.changed = True
        self._settle(lot, effects)
        return True

    def place_bid(
        self,
        bid_id: str,
        merchant_id: str,
        price_fen_per_kg: int,
        quantity_g: int,
        effects: Effects,
        *,
        at: datetime,
        min_lot_g: int | None = None,
        destination: str = "",
        cold_chain: bool = False,
        expires_at: datetime | None = None,
    ) -> bool:
        """Match a bid against resting lots and rest the rest; False for a bid id seen before."""
        if self.remembers_bid(bid_id):
            return False
        expires_at_us = None if expires_at is None else micros(expires_at)
        if expires_at_us is not None and expires_at_us <= micros(at):
            raise BidExpiresOnArrival(
                f"bid {bid_id} expires at {hall_time(expires_at_us)}, "
                f"not after it was placed at {hall_time(micros(at))}"
            )
        self.arrivals += 1
        bid = RestingBid(
            bid_id=bid_id,
            merchant_id=merchant_id,
            price_fen_per_kg=price_fen_per_kg,
            remaining_g=quantity_g,
            min_lot_g=min_lot_g,
            destination=destination,
            cold_chain=cold_chain,
            expires_at_us=expires_at_us,
            arrival=self.arrivals,
        )
        self._rest_bid(bid)
        if expires_at_us is not None:
            heapq.heappush(self._expiries, (expires_at_us, bid_id))
        effects.changed = True
        self._settle(bid, effects)
        return True

    def amend_bid(
        self,
        bid_id: str,
        merchant_id: str,
        price_fen_per_kg: int | None,
        remaining_g: int | None,
        effects: Effects,
    ) -> None:
        """Set a resting bid's price and/or remaining quantity, then match it again."""
        bid = self._own_resting_bid(bid_id, merchant_id)
        if price_fen_per_kg is None and remaining_g is None:
            raise NothingToAmend(f"the amend of bid {bid_id} names neither a price nor a quantity")
        price = bid.price_fen_per_kg if price_fen_per_kg is None else price_fen_per_kg
        remaining = bid.remaining_g if remaining_g is None else remaining_g
        if price == bid.price_fen_per_kg and remaining == bid.remaining_g:
            effects.note(resting_state(bid))
            return
        if price != bid.price_fen_per_kg or remaining > bid.remaining_g:
            self._unrest_bid(bid)
            bid.price_fen_per_kg = price
            bid.remaining_g = remaining
            self.arrivals += 1
            bid.arrival = self.arrivals
            self._rest_bid(bid)
        else:
            less = bid.remaining_g - remaining
            bid.remaining_g = remaining
            self._levels[price].change(-less)
            self._bid_depth_g -= less
        effects.changed = True
        self._settle(bid, effects)

    def cancel_bid(self, bid_id: str, merchant_id: str, effects: Effects) -> None:
        """Withdraw what is left of a merchant's own resting bid."""
        bid = self._own_resting_bid(bid_id, merchant_id)
        self._finish_bid(bid, "cancelled", f"cancelled by {merchant_id}", effects)

    def withdraw_lot(self, lot_id: str, effects: Effects) -> RestingLot:
        """Take what is left of a resting lot off the book; returns what was withdrawn."""
        lot = self._resting_lot(lot_id)
        self._finish_lot(lot, "withdrawn")
        effects.changed = True
        return lot

    def set_lot_reserve(self, lot_id: str, reserve_fen_per_kg: int, effects: Effects) -> None:
        """Give one resting lot a new reserve, keeping its place; it may trade at once."""
        lot = self._resting_lot(lot_id)
        if reserve_fen_per_kg == lot.reserve_fen_per_kg:
            return
        self._count_reserve(lot.reserve_fen_per_kg, -1)
        self._count_reserve(reserve_fen_per_kg, +1)
        lot.reserve_fen_per_kg = reserve_fen_per_kg
        effects.changed = True
        self._settle(lot, effects)

    def standing(self, bid_id: str, merchant_id: str, reason: str) -> BidState | None:
        """The merchant's own bid as it stands, with ``reason``; None if not theirs or unknown."""
        bid = self._bids.get(bid_id)
        if bid is not None:
            return resting_state(bid, reason) if bid.merchant_id == merchant_id else None
        done = self._finished_bids.get(bid_id)
        if done is not None and done.merchant_id == merchant_id:
            return finished_state(bid_id, done, reason)
        return None

    def _own_resting_bid(self, bid_id: str, merchant_id: str) -> RestingBid:
        bid = self._bids.get(bid_id)
        if bid is not None:
            if bid.merchant_id != merchant_id:
                raise NotYourBid(f"bid {bid_id} belongs to another merchant")
            return bid
        done = self._finished_bids.get(bid_id)
        if done is None:
            raise UnknownBid(f"bid {bid_id} is not on book {self.key}")
        if done.merchant_id != merchant_id:
            raise NotYourBid(f"bid {bid_id} belongs to another merchant")
        raise BidNotResting(f"bid {bid_id} is {done.status} already")

    def _resting_lot(self, lot_id: str) -> RestingLot:
        lot = self._lots.get(lot_id)
        if lot is not None:
            return lot
        done = self._finished_lots.get(lot_id)
        if done is not None:
            raise LotNotResting(f"lot {lot_id} is {done.status} already")
        raise UnknownLot(f"lot {lot_id} is not on book {self.key}")

    def _settle(self, order: RestingLot | RestingBid, effects: Effects) -> None:
        """Match an order that arrived or changed, then every order its trades changed.

        A partial fill changes what is left of the other side: a lot's crates get no lighter,
        but a bid's remaining may now be exactly what a lot can give, or a lot's remaining
        exactly what a minimum-lot bid still wants. Matching those again until nothing trades
        leaves no resting lot and bid that could trade with each other.
        """
        queue: deque[RestingLot | RestingBid] = deque([order])
        while queue:
            item = queue.popleft()
            if isinstance(item, RestingBid):
                if self._bids.get(item.bid_id) is item:
                    queue.extend(self._match_bid(item, effects))
            elif self._lots.get(item.lot_id) is item:
                queue.extend(self._match_lot(item, effects))

    def _match_bid(self, bid: RestingBid, effects: Effects) -> list[RestingLot]:
        """Fill a bid from resting lots, oldest first; returns the lots it left partly sold."""
        touched: list[RestingLot] = []
        if self._reserves and bid.price_fen_per_kg >= min(self._reserves):
            sold: list[RestingLot] = []
            for lot in self._lots.values():
                if lot.reserve_fen_per_kg <= bid.price_fen_per_kg and self._trade(
                    lot, bid, effects
                ):
                    (sold if lot.crates == 0 else touched).append(lot)
                    if bid.remaining_g == 0:
                        break
            for lot in sold:
                self._finish_lot(lot, "sold")
        self._report(bid, effects)
        return touched

    def _match_lot(self, lot: RestingLot, effects: Effects) -> list[RestingBid]:
        """Sell a lot to resting bids, best first; returns the bids it left partly filled."""
        touched: list[RestingBid] = []
        for price in reversed(self._prices):
            if price < lot.reserve_fen_per_kg:
                break
            for bid in self._levels[price].bids.values():
                if self._trade(lot, bid, effects):
                    touched.append(bid)
                    if lot.crates == 0:
                        break
            if lot.crates == 0:
                break
        if lot.crates == 0:
            self._finish_lot(lot, "sold")
        for bid in touched:
            self._report(bid, effects)
        return [bid for bid in touched if bid.remaining_g]

    def _report(self, bid: RestingBid, effects: Effects) -> None:
        if bid.remaining_g == 0:
            self._finish_bid(bid, "filled", "", effects)
        else:
            effects.note(resting_state(bid))

    def _trade(self, lot: RestingLot, bid: RestingBid, effects: Effects) -> bool:
        crates = crates_that_fit(lot.crates, lot.net_g, bid.remaining_g)
        if crates == 0:
            return False
        weight = crate_weight(lot.crates, lot.net_g, crates)
        if weight <= 0 or not bid.takes(weight):
            return False
        price = bid.price_fen_per_kg
        amount = amount_fen(weight, price)
        lot.crates -= crates
        lot.net_g -= weight
        self._offered_g -= weight
        bid.remaining_g -= weight
        bid.filled_g += weight
        bid.amount_fen += amount
        self._levels[price].change(-weight)
        self._bid_depth_g -= weight
        sequence = self.tape.record(weight, amount, price)
        effects.fills.append(
            Fill(
                trade_id=f"{self.key}:{sequence}",
                sequence=sequence,
                book=self.key,
                variety=self.variety,
                grade=self.grade,
                lot_id=lot.lot_id,
                farmer_id=lot.farmer_id,
                bid_id=bid.bid_id,
                merchant_id=bid.merchant_id,
                crates=crates,
                weight_g=weight,
                price_fen_per_kg=price,
                amount_fen=amount,
                reserve_fen_per_kg=lot.reserve_fen_per_kg,
                destination=bid.destination,
                cold_chain=bid.cold_chain,
            )
        )
        effects.changed = True
        return True

    def _rest_bid(self, bid: RestingBid) -> None:
        self._bids[bid.bid_id] = bid
        level = self._levels.get(bid.price_fen_per_kg)
        if level is None:
            level = self._levels[bid.price_fen_per_kg] = _Level(bid.price_fen_per_kg)
            insort(self._prices, bid.price_fen_per_kg)
        level.bids[bid.bid_id] = bid
        level.change(bid.remaining_g)
        self._bid_depth_g += bid.remaining_g

    def _unrest_bid(self, bid: RestingBid) -> None:
        del self._bids[bid.bid_id]
        price = bid.price_fen_per_kg
        level = self._levels[price]
        del level.bids[bid.bid_id]
        level.change(-bid.remaining_g)
        self._bid_depth_g -= bid.remaining_g
        if not level.bids:
            del self._levels[price]
            del self._prices[bisect_left(self._prices, price)]

    def _finish_bid(
        self, bid: RestingBid, status: BidStatus, reason: str, effects: Effects
    ) -> None:
        self._unrest_bid(bid)
        done = FinishedBid(
            merchant_id=bid.merchant_id,
            status=status,
            price_fen_per_kg=bid.price_fen_per_kg,
            quantity_g=bid.quantity_g,
            filled_g=bid.filled_g,
            amount_fen=bid.amount_fen,
            day=self._today(),
        )
        self._finished_bids[bid.bid_id] = done
        effects.note(finished_state(bid.bid_id, done, reason))
        effects.changed = True

    def _rest_lot(self, lot: RestingLot) -> None:
        self._lots[lot.lot_id] = lot
        self._count_reserve(lot.reserve_fen_per_kg, +1)
        self._offered_g += lot.net_g

    def _finish_lot(self, lot: RestingLot, status: LotStatus) -> None:
        del self._lots[lot.lot_id]
        self._count_reserve(lot.reserve_fen_per_kg, -1)
        self._offered_g -= lot.net_g
        self._finished_lots[lot.lot_id] = FinishedLot(status, self._today())

    def _count_reserve(self, reserve_fen_per_kg: int, step: int) -> None:
        count = self._reserves.get(reserve_fen_per_kg, 0) + step
        if count:
            self._reserves[reserve_fen_per_kg] = count
        else:
            del self._reserves[reserve_fen_per_kg]

    def _today(self) -> str:
        return "" if self.tape.day is None else self.tape.day.isoformat()

    def _forget_before(self, cutoff: str) -> None:
        """Drop finished ids older than ``cutoff``; they were stored in day order."""
        for finished in (self._finished_bids, self._finished_lots):
            stale = []
            for key, entry in finished.items():
                if entry.day >= cutoff:
                    break
                stale.append(key)
            for key in stale:
                del finished[key]

    def _expiry_heap(self) -> list[tuple[int, str]]:
        heap = [
            (bid.expires_at_us, bid.bid_id)
            for bid in self._bids.values()
            if bid.expires_at_us is not None
        ]
        heapq.heapify(heap)
        return heap

    def to_dict(self) -> dict[str, Any]:
        """The book as JSON-ready data; ``from_dict`` gives back an equal book."""
        return {
            "layout": STATE_LAYOUT,
            "key": self.key,
            "variety": self.variety,
            "grade": self.grade.value,
            "arrivals": self.arrivals,
            **self.tape.to_dict(),
            "lots": [
                {
                    "lot_id": lot.lot_id,
                    "farmer_id": lot.farmer_id,
                    "crates": lot.crates,
                    "net_g": lot.net_g,
                    "reserve_fen_per_kg": lot.reserve_fen_per_kg,
                }
                for lot in self._lots.values()
            ],
            "bids": [
                {
                    "bid_id": bid.bid_id,
                    "merchant_id": bid.merchant_id,
                    "price_fen_per_kg": bid.price_fen_per_kg,
                    "remaining_g": bid.remaining_g,
                    "min_lot_g": bid.min_lot_g,
                    "destination": bid.destination,
                    "cold_chain": bid.cold_chain,
                    "expires_at_us": bid.expires_at_us,
                    "arrival": bid.arrival,
                    "filled_g": bid.filled_g,
                    "amount_fen": bid.amount_fen,
                }
                for bid in self.bids()
            ],
            "finished_bids": {bid_id: done.row() for bid_id, done in self._finished_bids.items()},
            "finished_lots": {
                lot_id: [done.status, done.day] for lot_id, done in self._finished_lots.items()
            },
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Book:
        """Restore a stored book; raises ``ValueError`` for a layout it does not read."""
        layout = state.get("layout", 1)
        if layout != STATE_LAYOUT:
            raise ValueError(f"stored book layout {layout} is not layout {STATE_LAYOUT}")
        book = cls(state["key"], state["variety"], Grade(state["grade"]))
        book.arrivals = state["arrivals"]
        book.tape = Tape.from_dict(state)
        for lot in state["lots"]:
            book._rest_lot(RestingLot(**lot))
        for bid in state["bids"]:
            book._rest_bid(RestingBid(**bid))
        book._expiries = book._expiry_heap()
        book._finished_bids = {
            bid_id: FinishedBid(*done) for bid_id, done in state["finished_bids"].items()
        }
        book._finished_lots = {
            lot_id: FinishedLot(status, day)
            for lot_id, (status, day) in state["finished_lots"].items()
        }
        return book
