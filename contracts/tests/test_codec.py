"""Decoding refuses what is not a value of the topic, with a reason that names the fault."""

from __future__ import annotations

import pytest

from melon_contracts.codec import UndecodableMessage, decode, encode
from melon_contracts.events import BidUpdated
from melon_contracts.reference import Grade
from melon_contracts.topics import BOOK_COMMANDS, TRADES


def bid_update() -> BidUpdated:
    return BidUpdated(
        correlation_id="B-1",
        bid_id="B-1",
        merchant_id="merchant-xian",
        book="xizhoumi.class_i",
        variety="xizhoumi",
        grade=Grade.CLASS_I,
        status="resting",
        price_fen_per_kg=500,
        quantity_g=10_000,
        filled_g=0,
        remaining_g=10_000,
        amount_fen=0,
    )


def test_an_event_of_another_topic_is_refused_naming_what_it_is_and_what_belongs() -> None:
    with pytest.raises(UndecodableMessage) as refused:
        decode(TRADES, encode(bid_update()))
    reason = str(refused.value)
    assert "invalid trades value at type" in reason
    assert "'TradeExecuted'" in reason and "got 'BidUpdated'" in reason


def test_an_event_that_is_no_command_is_refused_naming_it() -> None:
    with pytest.raises(UndecodableMessage, match="'BidUpdated'"):
        decode(BOOK_COMMANDS, encode(bid_update()))


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (None, "empty value on trades"),
        (b"\x01garbage", "Invalid JSON"),
        (b'{"melon": "hami"}', "invalid trades value at correlation_id: Field required"),
    ],
    ids=["no value", "not JSON", "wrong schema"],
)
def test_bytes_that_are_no_event_are_refused_with_the_fault(data: bytes | None, fault: str) -> None:
    with pytest.raises(UndecodableMessage, match=fault):
        decode(TRADES, data)
