"""The replay check: the market folded again from its commands, compared with what was published."""

from __future__ import annotations

from melon_contracts.codec import encode, encode_key
from melon_contracts.commands import AmendBid, BookCommand, OfferLot, PlaceBid
from melon_contracts.reference import Grade
from pricing.adapters.command_log import Command
from pricing.replay import Published, Replay, compare

BOOK = "ganmibao.class_i"


def commands(*messages: BookCommand) -> list[Command]:
    return [
        Command(0, offset, encode_key(BOOK), encode(message))
        for offset, message in enumerate(messages)
    ]


def lot(lot_id: str, crates: int) -> OfferLot:
    return OfferLot(
        correlation_id=lot_id,
        lot_id=lot_id,
        farmer_id="farmer-1",
        variety="ganmibao",
        grade=Grade.CLASS_I,
        crates=crates,
        net_g=crates * 10_000,
        reserve_fen_per_kg=400,
    )


def bid(bid_id: str, kg: int) -> PlaceBid:
    return PlaceBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="m-1",
        variety="ganmibao",
        grade=Grade.CLASS_I,
        price_fen_per_kg=500,
        quantity_g=kg * 1000,
    )


def amend(bid_id: str, kg: int) -> AmendBid:
    return AmendBid(
        correlation_id=bid_id,
        bid_id=bid_id,
        merchant_id="m-1",
        variety="ganmibao",
        grade=Grade.CLASS_I,
        quantity_g=kg * 1000,
    )


DAY = (bid("b1", 50), amend("b1", 30), lot("L1", 2), bid("b2", 20), lot("L2", 3))


def published(replay: Replay) -> Published:
    """What a matcher that applied every command once would have put on the topics."""
    out = Published()
    for message in [*replay.trades.values(), *replay.bids.values(), *replay.board.values()]:
        out.add(message)
    return out


def test_the_topics_of_a_matcher_that_applied_each_command_once_match_the_replay() -> None:
    replay = Replay().take_all([commands(*DAY)])
    report = compare(replay, published(replay))
    assert report.matches, report.summary()
    assert report.trades == 3 and report.commands == 5


def test_a_command_applied_twice_shows_as_differences() -> None:
    # Given topics written by a matcher that ran the amendment twice, after the first lot sold
    replay = Replay().take_all([commands(*DAY)])
    twice = Replay().take_all([commands(*DAY[:3], amend("b1", 30), *DAY[3:])])
    # Then the replay names the bid and the trades that differ
    report = compare(replay, published(twice))
    assert not report.matches
    text = report.summary()
    assert "bid b1: " in text and "remaining_g" in text
    assert "trade ganmibao.class_i:" in text


def test_a_trade_missing_from_the_topic_is_named() -> None:
    replay = Replay().take_all([commands(*DAY)])
    topics = published(replay)
    gone = sorted(topics.trades)[-1]
    del topics.trades[gone]
    report = compare(replay, topics)
    assert f"trade {gone} is missing from trades" in report.differences


def test_records_no_book_can_take_are_counted_not_applied() -> None:
    broken = [Command(0, 0, encode_key(BOOK), b"{not json"), *commands(*DAY)[1:]]
    replay = Replay().take_all([broken])
    assert replay.unusable == 1 and replay.commands == 5
