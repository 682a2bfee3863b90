"""The yard stream: a snapshot on connect, one per burst of changes, heartbeats in between."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from fastapi import Request

from dispatch.bootstrap import build_in_memory
from dispatch.entrypoints import http
from dispatch.service import DispatchService
from melon_contracts.events import TradeExecuted
from melon_contracts.reference import Grade

T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)
WAIT_S = 5.0
"""Deadline for the stream's next message; they come within milliseconds when it works."""


def sold(n: int) -> TradeExecuted:
    return TradeExecuted(
        correlation_id=f"lot-{n}",
        occurred_at=T0 + timedelta(minutes=n),
        trade_id=f"ganmibao.extra:{n}",
        book="ganmibao.extra",
        sequence=n,
        lot_id=f"lot-{n}",
        farmer_id="farmer-1",
        bid_id=f"bid-{n}",
        merchant_id=f"m-{n}",
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=50,
        weight_g=1_000_000,
        price_fen_per_kg=680,
        amount_fen=680_000,
        destination="上海",
        cold_chain=False,
    )


class Browser:
    """The part of a request the stream looks at: whether the page is still open."""

    def __init__(self) -> None:
        self.closed = False

    async def is_disconnected(self) -> bool:
        return self.closed


def snapshot(message: str) -> Any:
    event, data = message.rstrip("\n").split("\n")
    assert event == "event: yard"
    return json.loads(data.removeprefix("data: "))


async def next_message(stream: AsyncGenerator[str, None]) -> str:
    return await asyncio.wait_for(anext(stream), WAIT_S)


async def watch(service: DispatchService, browser: Browser) -> list[Any]:
    stream = http._yard_events(cast(Request, browser), service)
    try:
        assert await next_message(stream) == f"retry: {http.RETRY_MS}\n\n"
        # On connect, the yard as it is
        first = snapshot(await next_message(stream))
        # A burst of changes comes as one snapshot, read after the burst
        service.record_trade(sold(1))
        service.record_trade(sold(2))
        second = snapshot(await next_message(stream))
        # With nothing new, a heartbeat keeps the connection open
        assert await next_message(stream) == ": heartbeat\n\n"
        # A page that closes ends the stream
        browser.closed = True
        with pytest.raises(StopAsyncIteration):
            await next_message(stream)
        return [first, second]
    finally:
        await stream.aclose()


def test_the_stream_sends_the_yard_on_connect_and_after_each_burst_of_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "HEARTBEAT_S", 0.2)
    service, _ = build_in_memory()
    first, second = asyncio.run(watch(service, Browser()))
    assert first["shipments"] == []
    assert [s["lines"][0]["trade_id"] for s in second["shipments"]] == [
        "ganmibao.extra:1",
        "ganmibao.extra:2",
    ]
    assert second["version"] == service.version > first["version"]
