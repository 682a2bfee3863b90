"""The board feed: every watcher gets the snapshot then each line in order, and a watcher that
stops reading is dropped without slowing the others or growing memory."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import tracemalloc
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from melon_contracts.events import BoardUpdated, DepthLevel, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import BOARD_UPDATES
from pricing.adapters.board_feed import BoardFeed, Subscription, SubscriptionClosed
from pricing.entrypoints.pages import board_events, line_view

START = datetime(2025, 7, 14, 2, 0, tzinfo=UTC)


def line(
    book: str = "xizhoumi.class_i",
    n: int = 1,
    *,
    best_bid: int | None = 560,
    at: datetime | None = None,
) -> BoardUpdated:
    """The ``n``-th line of a book: ``n`` trades so far, stamped ``n`` seconds after START."""
    variety, grade = book.split(".")
    return BoardUpdated(
        correlation_id=f"B-{n}",
        occurred_at=at or START + timedelta(seconds=n),
        book=book,
        variety=variety,
        grade=Grade(grade),
        best_bid_fen_per_kg=best_bid,
        bids_resting=1,
        bid_depth_g=400_000,
        lots_resting=0,
        offered_g=0,
        last_price_fen_per_kg=500 + n,
        volume_g=1_000 * n,
        trades=n,
    )


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def take(subscription: Subscription, count: int) -> list[BoardUpdated]:
    taken: list[BoardUpdated] = []
    for _ in range(count):
        got = await asyncio.wait_for(subscription.get(), 2)
        assert got is not None, f"stream ended after {len(taken)} of {count} lines"
        taken.append(got)
    return taken


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition`` holds; fail after two seconds."""
    deadline = asyncio.get_running_loop().time() + 2
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_a_watcher_gets_every_book_first_then_each_change_in_order() -> None:
    feed = BoardFeed()
    feed.publish(line("yujinxiang.extra", 3))
    feed.publish(line("ganmibao.class_ii", 1))

    async def scenario() -> list[BoardUpdated]:
        async with feed.subscribe() as lines:
            updates = [line("xizhoumi.class_i", 1), line("ganmibao.class_ii", 2)]
            for update in updates:
                feed.publish(update)
            return await take(lines, 4)

    got = asyncio.run(scenario())
    assert [(g.book, g.trades) for g in got] == [
        ("ganmibao.class_ii", 1),
        ("yujinxiang.extra", 3),
        ("xizhoumi.class_i", 1),
        ("ganmibao.class_ii", 2),
    ]


def test_an_older_line_replayed_late_is_neither_kept_nor_sent() -> None:
    feed = BoardFeed()
    newer = line(n=5)
    feed.publish(newer)

    async def scenario() -> None:
        async with feed.subscribe() as lines:
            assert await take(lines, 1) == [newer]
            assert feed.publish(line(n=4)) is False
            assert lines.pending == 0

    asyncio.run(scenario())
    assert feed.latest() == [newer]


def test_lines_published_from_the_reader_thread_arrive_in_order() -> None:
    feed = BoardFeed()
    count = 500

    async def scenario() -> list[int]:
        async with feed.subscribe() as lines:

            def reader() -> None:
                for n in range(1, count + 1):
                    # A watcher that keeps up: never a whole queue behind (256) the reader.
                    while lines.pending > 128:
                        time.sleep(0.0005)
                    feed.publish(line(n=n))

            thread = threading.Thread(target=reader)
            thread.start()
            got = [g.trades for g in await take(lines, count)]
            thread.join()
            return got

    assert asyncio.run(scenario()) == list(range(1, count + 1))


def test_a_watcher_that_stops_reading_is_dropped_and_the_others_get_every_line() -> None:
    feed = BoardFeed(queue_size=256)
    watchers, updates, chunk = 200, 1_000, 100
    dropped_before = metric("melon_pricing_board_subscribers_dropped_total")
    delivered_before = metric("melon_pricing_board_updates_delivered_total")
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> tuple[list[list[int]], Subscription]:
        received: list[list[int]] = [[] for _ in range(watchers - 1)]
        stuck = feed.subscribe()
        await stuck.__aenter__()
        readers = [feed.subscribe() for _ in range(watchers - 1)]
        for reader in readers:
            await reader.__aenter__()
        assert feed.subscribers == watchers

        async def read(reader: Subscription, into: list[int]) -> None:
            async for got in reader:
                into.append(got.trades)

        tasks = [
            asyncio.create_task(read(r, into)) for r, into in zip(readers, received, strict=True)
        ]
        for start in range(1, updates + 1, chunk):
            for n in range(start, start + chunk):
                feed.publish(line(n=n))
                assert stuck.pending <= 256
            await until(lambda: all(r.pending == 0 for r in readers), "readers to catch up")
        feed.stop()
        await asyncio.gather(*tasks)
        return received, stuck

    received, stuck = asyncio.run(scenario())
    assert all(got == list(range(1, updates + 1)) for got in received)
    assert stuck.dropped and stuck.closed and stuck.pending == 0
    assert metric("melon_pricing_board_subscribers_dropped_total") - dropped_before == 1
    delivered = metric("melon_pricing_board_updates_delivered_total") - delivered_before
    assert delivered == (watchers - 1) * updates + 256
    assert metric("melon_pricing_board_subscribers") == gauge_before


def test_a_dropped_watcher_stream_ends_instead_of_going_on_behind() -> None:
    feed = BoardFeed(queue_size=4)

    async def scenario() -> list[BoardUpdated | None]:
        async with feed.subscribe() as lines:
            for n in range(1, 6):
                feed.publish(line(n=n))
            return [await lines.get(), await lines.get()]

    assert asyncio.run(scenario()) == [None, None]
    assert feed.subscribers == 0


def test_memory_stays_flat_while_watchers_sit_on_ten_thousand_lines() -> None:
    feed = BoardFeed(queue_size=256)
    lines = [line(n=n) for n in range(1, 10_001)]
    sizes: list[int] = []

    async def scenario() -> int:
        stuck = [feed.subscribe() for _ in range(50)]
        for subscription in stuck:
            await subscription.__aenter__()
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for n, update in enumerate(lines):
                feed.publish(update)
                if n % 100 == 0:
                    sizes.append(max(s.pending for s in stuck))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak - baseline

    growth = asyncio.run(scenario())
    # Unbounded queues would hold 50 x 10,000 references (about 4 MB); bounded ones 256 each
    # until the watcher is dropped.
    assert max(sizes) <= 256
    assert feed.subscribers == 0
    assert growth < 1_000_000, growth


def test_leaving_a_subscription_stops_deliveries_to_it() -> None:
    feed = BoardFeed()
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> Subscription:
        async with feed.subscribe() as lines:
            assert metric("melon_pricing_board_subscribers") == gauge_before + 1
        feed.publish(line())
        return lines

    lines = asyncio.run(scenario())
    assert feed.subscribers == 0 and lines.pending == 0
    assert metric("melon_pricing_board_subscribers") == gauge_before


def test_a_watcher_whose_event_loop_is_gone_is_forgotten() -> None:
    feed = BoardFeed()

    async def abandon() -> None:
        await feed.subscribe().__aenter__()

    asyncio.run(abandon())
    assert feed.subscribers == 1
    feed.publish(line())
    assert feed.subscribers == 0


def test_stop_ends_every_open_stream() -> None:
    feed = BoardFeed()

    async def scenario() -> list[BoardUpdated | None]:
        subscriptions = [feed.subscribe() for _ in range(3)]
        for subscription in subscriptions:
            await subscription.__aenter__()
        waiting = [asyncio.create_task(s.get()) for s in subscriptions]
        await asyncio.sleep(0)
        feed.stop()
        return await asyncio.wait_for(asyncio.gather(*waiting), 2)

    assert asyncio.run(scenario()) == [None, None, None]


def test_a_subscription_is_read_only_inside_its_block() -> None:
    feed = BoardFeed()

    async def scenario() -> None:
        with pytest.raises(SubscriptionClosed):
            await feed.subscribe().get()

    asyncio.run(scenario())


HANDLED: list[tuple[str, str | None, object, str | None]] = [
    ("line", "xizhoumi.class_i", line(), None),
    ("no key", None, line(), None),
    ("wrong key", "ganmibao.extra", line(), "does not name"),
    (
        "no line",
        "xizhoumi.class_i",
        TradeExecuted(
            correlation_id="B-1",
            trade_id="T-1",
            book="xizhoumi.class_i",
            sequence=1,
            lot_id="L-1",
            farmer_id="F-1",
            bid_id="B-1",
            merchant_id="M-1",
            variety="xizhoumi",
            grade=Grade.CLASS_I,
            crates=1,
            weight_g=1_000,
            price_fen_per_kg=500,
            amount_fen=500,
            destination="",
            cold_chain=False,
        ),
        "no board line",
    ),
]


@pytest.mark.parametrize(
    ("key", "message", "refusal"), [c[1:] for c in HANDLED], ids=[c[0] for c in HANDLED]
)
def test_the_reader_handler_takes_lines_and_refuses_anything_else(
    key: str | None, message: BoardUpdated | TradeExecuted, refusal: str | None
) -> None:
    feed = BoardFeed()
    if refusal is None:
        feed.handle(BOARD_UPDATES, key, message)
        assert feed.latest() == [message]
    else:
        # A ValueError is what the reader sends to the dead-letter topic with the reason.
        with pytest.raises(ValueError, match=refusal):
            feed.handle(BOARD_UPDATES, key, message)
        assert feed.latest() == []


def test_a_queue_must_hold_at_least_one_line() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoardFeed(queue_size=0)


# -- the stream's frames -------------------------------------------------------------------


def frames(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of SSE frames; comments and ``retry`` as ("comment"/"retry", text)."""
    parsed = []
    for block in text.strip("\n").split("\n\n"):
        fields = dict(f.partition(": ")[::2] for f in block.split("\n"))
        if "event" in fields:
            parsed.append((fields["event"], fields["data"]))
        elif "retry" in fields:
            parsed.append(("retry", fields["retry"]))
        else:
            parsed.append(("comment", block))
    return parsed


async def collect(stream: AsyncGenerator[str, None], count: int) -> str:
    return "".join([await asyncio.wait_for(anext(stream), 2) for _ in range(count)])


def run_stream(
    feed: BoardFeed, steps: Callable[[AsyncGenerator[str, None]], Awaitable[str]]
) -> str:
    async def scenario() -> str:
        stream = board_events(feed, heartbeat_s=0.05)
        try:
            return await steps(stream)
        finally:
            await stream.aclose()

    return asyncio.run(scenario())


def test_the_stream_sends_the_snapshot_then_ready_then_changes_and_heartbeats() -> None:
    feed = BoardFeed()
    feed.publish(line("ganmibao.extra", 2))
    feed.publish(line("xizhoumi.class_i", 1))

    async def steps(stream: AsyncGenerator[str, None]) -> str:
        text = await collect(stream, 4)
        feed.publish(line("xizhoumi.class_i", 2))
        text += await collect(stream, 1)
        return text + await collect(stream, 1)  # nothing happens: a heartbeat

    got = frames(run_stream(feed, steps))
    assert [kind for kind, _ in got] == ["retry", "board", "board", "ready", "board", "comment"]
    books = [json.loads(data)["book"] for kind, data in got if kind == "board"]
    assert books == ["ganmibao.extra", "xizhoumi.class_i", "xizhoumi.class_i"]
    assert json.loads(got[3][1]) == {"books": 2}
    assert json.loads(got[4][1])["trades"] == 2
    assert got[5][1] == ": heartbeat"


def test_an_empty_board_is_ready_at_once() -> None:
    feed = BoardFeed()

    async def steps(stream: AsyncGenerator[str, None]) -> str:
        return await collect(stream, 2)

    assert frames(run_stream(feed, steps)) == [("retry", "2000"), ("ready", '{"books": 0}')]


def test_a_line_on_the_stream_reads_in_yuan_and_kg_with_its_day_figures() -> None:
    full = BoardUpdated(
        correlation_id="B-9",
        occurred_at=START,
        book="ganmibao.extra",
        variety="ganmibao",
        grade=Grade.EXTRA,
        best_bid_fen_per_kg=650,
        bids_resting=3,
        bid_depth_g=1_200_500,
        depth=(
            DepthLevel(price_fen_per_kg=650, bids=2, quantity_g=800_000),
            DepthLevel(price_fen_per_kg=640, bids=1, quantity_g=400_500),
        ),
        lots_resting=2,
        offered_g=3_000_000,
        last_price_fen_per_kg=660,
        volume_g=9_000_000,
        trades=12,
        trading_day=date(2025, 7, 14),
        high_fen_per_kg=680,
        low_fen_per_kg=610,
        vwap_fen_per_kg=645,
        volume_g_today=2_500_000,
        amount_fen_today=1_612_500,
        trades_today=4,
        previous_close_fen_per_kg=630,
        change_fen_per_kg=30,
    )
    view = line_view(full)
    assert view | {"depth": None} == {
        "book": "ganmibao.extra",
        "variety": "ganmibao",
        "variety_zh": "甘蜜宝",
        "variety_en": "Ganmibao",
        "grade": "extra",
        "grade_zh": "特级",
        "grade_en": "Extra",
        "best_bid_yuan_per_kg": "6.50",
        "bids_resting": 3,
        "bid_depth_kg": "1200.5",
        "depth": None,
        "lots_resting": 2,
        "offered_kg": "3000",
        "last_price_yuan_per_kg": "6.60",
        "volume_kg": "9000",
        "trades": 12,
        "trading_day": "2025-07-14",
        "high_yuan_per_kg": "6.80",
        "low_yuan_per_kg": "6.10",
        "vwap_yuan_per_kg": "6.45",
        "volume_kg_today": "2500",
        "amount_yuan_today": "16125.00",
        "trades_today": 4,
        "previous_close_yuan_per_kg": "6.30",
        "change_yuan_per_kg": "0.30",
        "updated_at": "2025-07-14T02:00:00+00:00",
    }
    assert view["depth"] == [
        {"price_yuan_per_kg": "6.50", "bids": 2, "quantity_kg": "800"},
        {"price_yuan_per_kg": "6.40", "bids": 1, "quantity_kg": "400.5"},
    ]
    fell = line_view(full.model_copy(update={"change_fen_per_kg": -25}))
    assert fell["change_yuan_per_kg"] == "-0.25"
