"""One order book (variety x grade): resting lots and bids, matched by price-time priority.

Rules:
- Bids rank by price (highest first), then by arrival. Lots rank by arrival.
- A lot may trade only with a bid at or above its reserve price.
- Trade price: the bid's price (pay-as-bid). The reserve is the cooperative's floor, not an asking
  price, so the farmer gets what the merchant offered, whichever side arrived first.
- Lots trade in whole crates: a bid takes as many crates as fit in what it still wants; the crates'
  weight is the lot's remaining weight shared out per crate in integer grams, and the last crate of
  a lot takes the remainder, so the weights sold always add up to the weight weighed.
- A lot id or bid id seen before is ignored, so a command delivered twice has one effect.

The book is deterministic: the same commands in the same order give the same trades and ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from melon_contracts.reference import Grade
from melon_contracts.units import amount_fen
from pricing.domain.errors import NotYourBid, UnknownBid


@dataclass
class RestingLot:
    lot_id: str
    farmer_id: str
    crates: int
    net_g: int
    reserve_fen_per_kg: int


@dataclass
class RestingBid:
    bid_id: str
    merchant_id: str
    price_fen_per_kg: int
    remaining_g: int
    destination: str
    cold_chain: bool
    arrival: int


@dataclass(frozen=True)
class Fill:
    """A trade the book made: ``crates`` of ``lot`` to ``bid``."""

    trade_id: str
    sequence: int
    lot_id: str
    farmer_id: str
    bid_id: str
    merchant_id: str
    crates: int
    weight_g: int
    price_fen_per_kg: int
    amount_fen: int
    destination: str
    cold_chain: bool


@dataclass(frozen=True)
class BoardLine:
    best_bid_fen_per_kg: int | None
    bids_resting: int
    bid_depth_g: int
    lots_resting: int
    offered_g: int
    last_price_fen_per_kg: int | None
    volume_g: int
    trades: int


@dataclass
class Book:
    key: str
    variety: str
    grade: Grade
    lots: list[RestingLot] = field(default_factory=list)
    bids: list[RestingBid] = field(default_factory=list)
    seen_lots: set[str] = field(default_factory=set)
    seen_bids: set[str] = field(default_factory=set)
    arrivals: int = 0
    trade_sequence: int = 0
    last_price_fen_per_kg: int | None = None
    volume_g: int = 0

    def offer_lot(
        self, lot_id: str, farmer_id: str, crates: int, net_g: int, reserve_fen_per_kg: int
    ) -> list[Fill] | None:
        """Rest a lot and match it; ``None`` when the lot was offered before."""
        if lot_id in self.seen_lots:
            return None
        self.seen_lots.add(lot_id)
        lot = RestingLot(lot_id, farmer_id, crates, net_g, reserve_fen_per_kg)
        fills: list[Fill] = []
        for bid in sorted(self.bids, key=lambda b: (-b.price_fen_per_kg, b.arrival)):
            if lot.crates == 0:
                break
            if bid.price_fen_per_kg >= lot.reserve_fen_per_kg:
                self._cross(lot, bid, fills)
        self._drop_done()
        if lot.crates:
            self.lots.append(lot)
        return fills

    def place_bid(
        self,
        bid_id: str,
        merchant_id: str,
        price_fen_per_kg: int,
        quantity_g: int,
        destination: str,
        cold_chain: bool,
    ) -> list[Fill] | None:
        """Match a bid against resting lots and rest the rest; ``None`` for a bid id seen before."""
        if bid_id in self.seen_bids:
            return None
        self.seen_bids.add(bid_id)
        self.arrivals += 1
        bid = RestingBid(
            bid_id,
            merchant_id,
            price_fen_per_kg,
            quantity_g,
            destination,
            cold_chain,
            self.arrivals,
        )
        fills: list[Fill] = []
        for lot in self.lots:
            if bid.remaining_g == 0:
                break
            if bid.price_fen_per_kg >= lot.reserve_fen_per_kg:
                self._cross(lot, bid, fills)
        if bid.remaining_g:
            self.bids.append(bid)
        self._drop_done()
        return fills

    def cancel_bid(self, bid_id: str, merchant_id: str) -> RestingBid:
        for bid in self.bids:
            if bid.bid_id == bid_id:
                if bid.merchant_id != merchant_id:
                    raise NotYourBid(f"bid {bid_id} belongs to another merchant")
                self.bids.remove(bid)
                return bid
        raise UnknownBid(f"bid {bid_id} is not resting in {self.key}")

    def board(self) -> BoardLine:
        return BoardLine(
            best_bid_fen_per_kg=max((b.price_fen_per_kg for b in self.bids), default=None),
            bids_resting=len(self.bids),
            bid_depth_g=sum(b.remaining_g for b in self.bids),
            lots_resting=len(self.lots),
            offered_g=sum(lot.net_g for lot in self.lots),
            last_price_fen_per_kg=self.last_price_fen_per_kg,
            volume_g=self.volume_g,
            trades=self.trade_sequence,
        )

    def _cross(self, lot: RestingLot, bid: RestingBid, fills: list[Fill]) -> None:
        crates = crates_that_fit(lot.crates, lot.net_g, bid.remaining_g)
        if crates == 0:
            return
        weight = crate_weight(lot.crates, lot.net_g, crates)
        lot.crates -= crates
        lot.net_g -= weight
        bid.remaining_g -= weight
        self.trade_sequence += 1
        self.last_price_fen_per_kg = bid.price_fen_per_kg
        self.volume_g += weight
        fills.append(
            Fill(
                trade_id=f"{self.key}:{self.trade_sequence}",
                sequence=self.trade_sequence,
                lot_id=lot.lot_id,
                farmer_id=lot.farmer_id,
                bid_id=bid.bid_id,
                merchant_id=bid.merchant_id,
                crates=crates,
                weight_g=weight,
                price_fen_per_kg=bid.price_fen_per_kg,
                amount_fen=amount_fen(weight, bid.price_fen_per_kg),
                destination=bid.destination,
                cold_chain=bid.cold_chain,
            )
        )

    def _drop_done(self) -> None:
        self.lots = [lot for lot in self.lots if lot.crates > 0]
        self.bids = [bid for bid in self.bids if bid.remaining_g > 0]

    def to_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state["grade"] = self.grade.value
        state["seen_lots"] = sorted(self.seen_lots)
        state["seen_bids"] = sorted(self.seen_bids)
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Book:
        return cls(
            key=state["key"],
            variety=state["variety"],
            grade=Grade(state["grade"]),
            lots=[RestingLot(**lot) for lot in state["lots"]],
            bids=[RestingBid(**bid) for bid in state["bids"]],
            seen_lots=set(state["seen_lots"]),
            seen_bids=set(state["seen_bids"]),
            arrivals=state["arrivals"],
            trade_sequence=state["trade_sequence"],
            last_price_fen_per_kg=state["last_price_fen_per_kg"],
            volume_g=state["volume_g"],
        )


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
