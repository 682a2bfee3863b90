"""The board feed: every watcher gets the snapshot then the changes in order; a watcher that falls
behind holds at most one line per book and gets the newest of each, without slowing the others,
growing memory or being dropped; a line is rendered once and a wake is written as one chunk."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import tracemalloc
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from melon_contracts.events import BoardUpdated, DepthLevel, TradeExecuted
from melon_contracts.reference import Grade
from melon_contracts.topics import BOARD_UPDATES
from pricing.adapters.board_feed import (
    WAKE_SLICE,
    BoardFeed,
    Posted,
    Subscription,
    SubscriptionClosed,
)
from pricing.entrypoints.pages import board_events, line_view

START = datetime(2025, 7, 14, 2, 0, tzinfo=UTC)
BOOKS = [
    f"{variety}.{grade.value}"
    for variety in ("ganmibao", "xizhoumi", "yujinxiang")
    for grade in Grade
]
"""Twelve books, as the hall has."""


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


def tape(count: int, seed: int, books: list[str] = BOOKS) -> list[BoardUpdated]:
    """``count`` lines over ``books`` in a seeded random order, each newer than its book's last."""
    rng = random.Random(seed)
    trades = dict.fromkeys(books, 0)
    lines = []
    for _ in range(count):
        book = rng.choice(books)
        trades[book] += 1
        lines.append(line(book, trades[book]))
    return lines


def newest(lines: list[BoardUpdated]) -> dict[str, BoardUpdated]:
    last: dict[str, BoardUpdated] = {}
    for each in lines:
        last[each.book] = each
    return last


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def lines_of(batch: list[Posted] | None) -> list[BoardUpdated]:
    assert batch is not None, "the stream ended"
    return [posted.line for posted in batch]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition`` holds; fail after five seconds."""
    deadline = asyncio.get_running_loop().time() + 5
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


async def enter(feed: BoardFeed, count: int) -> list[Subscription]:
    subscriptions = [feed.subscribe() for _ in range(count)]
    for subscription in subscriptions:
        await subscription.__aenter__()
    return subscriptions


# -- the feed ------------------------------------------------------------------------------

KEEPING_UP = [
    ("empty board", [], [line("xizhoumi.class_i", 1), line("xizhoumi.class_i", 2)]),
    (
        "two books, then changes to a third and to one of them",
        [line("yujinxiang.extra", 3), line("ganmibao.class_ii", 1)],
        [line("xizhoumi.class_i", 1), line("ganmibao.class_ii", 2), line("xizhoumi.class_i", 2)],
    ),
]


@pytest.mark.parametrize(
    ("before", "changes"), [c[1:] for c in KEEPING_UP], ids=[c[0] for c in KEEPING_UP]
)
def test_a_watcher_gets_every_book_first_then_each_change_in_order(
    before: list[BoardUpdated], changes: list[BoardUpdated]
) -> None:
    feed = BoardFeed()
    for each in before:
        feed.publish(each)

    async def scenario() -> tuple[list[BoardUpdated], list[BoardUpdated]]:
        async with feed.subscribe() as watcher:
            got = []
            for change in changes:
                feed.publish(change)
                got += lines_of(await asyncio.wait_for(watcher.take(), 2))
            return [posted.line for posted in watcher.snapshot], got

    snapshot, got = asyncio.run(scenario())
    assert snapshot == sorted(before, key=lambda each: each.book)
    assert got == changes


def test_an_older_line_replayed_late_is_neither_kept_nor_sent() -> None:
    feed = BoardFeed()
    newer = line(n=5)
    feed.publish(newer)

    async def scenario() -> None:
        async with feed.subscribe() as watcher:
            assert [posted.line for posted in watcher.snapshot] == [newer]
            assert feed.publish(line(n=4)) is False
            assert watcher.pending == 0

    asyncio.run(scenario())
    assert feed.latest() == [newer]


def test_a_watcher_reading_nothing_holds_a_line_per_book_then_gets_each_books_newest() -> None:
    feed = BoardFeed()
    lines = tape(10_000, seed=12)
    first_pending = list(dict.fromkeys(each.book for each in lines))
    delivered_before = metric("melon_pricing_board_updates_delivered_total")
    conflated_before = metric("melon_pricing_board_updates_conflated_total")

    async def scenario() -> tuple[int, list[BoardUpdated]]:
        async with feed.subscribe() as watcher:
            most = 0
            for each in lines:
                feed.publish(each)
                most = max(most, watcher.pending)
            return most, lines_of(await asyncio.wait_for(watcher.take(), 2))

    most, got = asyncio.run(scenario())
    assert most == len(BOOKS)
    assert got == [newest(lines)[book] for book in first_pending]
    assert metric("melon_pricing_board_updates_delivered_total") - delivered_before == len(BOOKS)
    conflated = metric("melon_pricing_board_updates_conflated_total") - conflated_before
    assert conflated == len(lines) - len(BOOKS)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_per_book_a_watcher_never_gets_an_older_line_after_a_newer_one(seed: int) -> None:
    # Given a seeded stream published from another thread, as the Kafka reader does, with a
    # watcher that subscribes part-way and reads with random pauses
    feed = BoardFeed()
    lines = tape(3_000, seed)
    rng = random.Random(seed)
    for each in lines[:200]:
        feed.publish(each)

    async def scenario() -> list[list[BoardUpdated]]:
        async with feed.subscribe() as watcher:
            received = [[posted.line for posted in watcher.snapshot]]

            def reader() -> None:
                for n, each in enumerate(lines[200:]):
                    feed.publish(each)
                    if n % 97 == 0:
                        time.sleep(0.001)

            thread = threading.Thread(target=reader)
            thread.start()
            last = newest(lines)
            got: dict[str, BoardUpdated] = {}
            deadline = asyncio.get_running_loop().time() + 10
            while got != last:
                assert asyncio.get_running_loop().time() < deadline, "the newest lines never came"
                batch = lines_of(await watcher.take(idle_s=1))
                received.append(batch)
                got.update((each.book, each) for each in batch)
                await asyncio.sleep(rng.random() * 0.003)
            thread.join()
            return received

    received = asyncio.run(scenario())
    # Then each batch holds a book at most once, and per book the trades only ever go up
    for batch in received[1:]:
        assert len({each.book for each in batch}) == len(batch)
    seen: dict[str, int] = {}
    for each in (each for batch in received for each in batch):
        assert each.trades > seen.get(each.book, 0), f"{each.book}: older after newer"
        seen[each.book] = each.trades
    assert len(received) > 2, "the watcher never woke more than once"


def test_a_watcher_that_stops_reading_costs_the_others_nothing() -> None:
    feed = BoardFeed()
    watchers = 100
    lines = tape(300, seed=7)
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> tuple[list[list[BoardUpdated]], list[BoardUpdated], int]:
        stuck, *readers = await enter(feed, watchers)
        received: list[list[BoardUpdated]] = [[] for _ in readers]

        async def read(reader: Subscription, into: list[BoardUpdated]) -> None:
            while (batch := await reader.take()) is not None:
                into += lines_of(batch)

        tasks = [
            asyncio.create_task(read(r, into)) for r, into in zip(readers, received, strict=True)
        ]
        most = 0
        for each in lines:
            feed.publish(each)
            most = max(most, stuck.pending)
            # The readers take each line before the next: they keep up, so nothing is conflated
            await until(lambda: all(r.pending == 0 for r in readers), "readers to catch up")
        assert feed.subscribers == watchers and not stuck.closed
        left = lines_of(await stuck.take())
        feed.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return received, left, most

    received, left, most = asyncio.run(scenario())
    assert all(got == lines for got in received)
    assert most <= len(BOOKS)
    assert left == list(newest(lines).values())
    assert metric("melon_pricing_board_subscribers") == gauge_before


def test_a_line_for_many_watchers_is_handed_out_a_slice_per_turn_of_the_loop() -> None:
    feed = BoardFeed()
    watchers = WAKE_SLICE * 4

    async def scenario() -> list[int]:
        subscriptions = await enter(feed, watchers)
        read = [0]

        async def watch(subscription: Subscription) -> None:
            lines_of(await subscription.take())
            read[0] += 1

        tasks = [asyncio.create_task(watch(s)) for s in subscriptions]
        await asyncio.sleep(0)  # one turn: every watcher is waiting
        feed.publish(line())
        # Another task of the loop (a bid, /metrics) notes how many had the line at each turn
        seen = []
        deadline = asyncio.get_running_loop().time() + 5
        while read[0] < watchers:
            assert asyncio.get_running_loop().time() < deadline, "the watchers never read"
            seen.append(read[0])
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return [*seen, read[0]]

    seen = asyncio.run(scenario())
    assert max(b - a for a, b in itertools.pairwise(seen)) <= WAKE_SLICE, seen


def test_memory_stays_flat_while_watchers_sit_on_ten_thousand_lines() -> None:
    feed = BoardFeed()
    lines = tape(10_000, seed=3)
    sizes: list[int] = []

    async def scenario() -> int:
        stuck = await enter(feed, 50)
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
        assert feed.subscribers == 50, "a slow watcher is never dropped"
        return peak - baseline

    growth = asyncio.run(scenario())
    # Queues of every line would hold 50 x 10,000 references (4 MB and more); one line per book
    # is 50 x 12, whatever the number of lines.
    assert max(sizes) <= len(BOOKS)
    assert growth < 200_000, growth


def test_leaving_a_subscription_stops_deliveries_to_it() -> None:
    feed = BoardFeed()
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> Subscription:
        async with feed.subscribe() as watcher:
            assert metric("melon_pricing_board_subscribers") == gauge_before + 1
        feed.publish(line())
        return watcher

    watcher = asyncio.run(scenario())
    assert feed.subscribers == 0 and watcher.pending == 0 and watcher.closed
    assert metric("melon_pricing_board_subscribers") == gauge_before


def test_a_stream_cancelled_when_its_client_goes_away_leaves_the_feed() -> None:
    feed = BoardFeed()
    feed.publish(line())
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> None:
        stream = board_events(feed, heartbeat_s=30)
        await asyncio.wait_for(anext(stream), 2)
        started = asyncio.Event()

        async def respond() -> list[bytes]:
            started.set()  # the rest of this step runs on into the stream's wait for a line
            return await collect_all(stream)

        waiting = asyncio.create_task(respond())
        await started.wait()
        # The web server cancels the response's task when the client disconnects
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert feed.subscribers == 0
        await stream.aclose()

    asyncio.run(scenario())
    assert metric("melon_pricing_board_subscribers") == gauge_before


@pytest.mark.parametrize("pending", [False, True], ids=["nothing pending", "a line pending"])
def test_a_watcher_whose_event_loop_is_gone_is_forgotten(pending: bool) -> None:
    feed = BoardFeed()
    gauge_before = metric("melon_pricing_board_subscribers")

    async def abandon() -> Subscription:
        watcher = feed.subscribe()
        await watcher.__aenter__()
        if pending:
            feed.publish(line(n=1))
        return watcher

    # Given a watcher that never left its block, on a loop that has since closed
    watcher = asyncio.run(abandon())
    assert feed.subscribers == 1
    # When the next line comes, whether or not the watcher still had one to take
    feed.publish(line("ganmibao.extra", 1))
    # Then it is forgotten
    assert feed.subscribers == 0
    assert watcher.closed and watcher.pending == 0
    assert metric("melon_pricing_board_subscribers") == gauge_before


async def stop_on_the_loop(feed: BoardFeed) -> None:
    feed.stop()


async def stop_from_another_thread(feed: BoardFeed) -> None:
    # As the web server's shutdown does
    await asyncio.to_thread(feed.stop)


@pytest.mark.parametrize("stop", [stop_on_the_loop, stop_from_another_thread])
def test_stop_ends_every_open_stream(stop: Callable[[BoardFeed], Awaitable[None]]) -> None:
    feed = BoardFeed()
    feed.publish(line())
    gauge_before = metric("melon_pricing_board_subscribers")

    async def scenario() -> tuple[list[list[Posted] | None], list[bytes]]:
        subscriptions = await enter(feed, 3)
        waiting = [asyncio.create_task(s.take()) for s in subscriptions]
        stream = board_events(feed, heartbeat_s=30)
        first = await asyncio.wait_for(anext(stream), 2)
        rest = asyncio.create_task(collect_all(stream))
        await stop(feed)
        ended = await asyncio.wait_for(asyncio.gather(*waiting), 2)
        return ended, [first, *await asyncio.wait_for(rest, 2)]

    ended, chunks = asyncio.run(scenario())
    assert ended == [None, None, None]
    assert [kind for kind, _ in frames(b"".join(chunks))] == ["retry", "board", "ready"]
    assert feed.subscribers == 0
    assert metric("melon_pricing_board_subscribers") == gauge_before


def test_a_subscription_is_read_only_inside_its_block() -> None:
    feed = BoardFeed()

    async def scenario() -> None:
        with pytest.raises(SubscriptionClosed):
            await feed.subscribe().take()

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


# -- the stream's frames -------------------------------------------------------------------


def frames(text: bytes) -> list[tuple[str, str]]:
    """(event, data) pairs of SSE frames; comments and ``retry`` as ("comment"/"retry", text)."""
    parsed = []
    for block in text.decode().strip("\n").split("\n\n"):
        fields = dict(f.partition(": ")[::2] for f in block.split("\n"))
        if "event" in fields:
            parsed.append((fields["event"], fields["data"]))
        elif "retry" in fields:
            parsed.append(("retry", fields["retry"]))
        else:
            parsed.append(("comment", block))
    return parsed


async def collect(stream: AsyncGenerator[bytes, None], count: int) -> list[bytes]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(count)]


async def collect_all(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
    return [chunk async for chunk in stream]


def run_stream(
    feed: BoardFeed,
    steps: Callable[[AsyncGenerator[bytes, None]], Awaitable[list[bytes]]],
    **options: Any,
) -> list[bytes]:
    async def scenario() -> list[bytes]:
        stream = board_events(feed, **({"heartbeat_s": 0.05} | options))
        try:
            return await steps(stream)
        finally:
            await stream.aclose()

    return asyncio.run(scenario())


def test_the_stream_sends_the_snapshot_then_ready_then_changes_and_heartbeats() -> None:
    feed = BoardFeed()
    feed.publish(line("ganmibao.extra", 2))
    feed.publish(line("xizhoumi.class_i", 1))

    async def steps(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
        chunks = await collect(stream, 1)
        feed.publish(line("xizhoumi.class_i", 2))
        chunks += await collect(stream, 1)
        return chunks + await collect(stream, 2)  # nothing happens: heartbeats, one per wait

    chunks = run_stream(feed, steps)
    got = [frames(chunk) for chunk in chunks]
    assert [[kind for kind, _ in chunk] for chunk in got] == [
        ["retry", "board", "board", "ready"],
        ["board"],
        ["comment"],
        ["comment"],
    ]
    books = [json.loads(got[0][n][1])["book"] for n in (1, 2)]
    assert books == ["ganmibao.extra", "xizhoumi.class_i"]
    assert json.loads(got[0][3][1]) == {"books": 2}
    assert json.loads(got[1][0][1])["trades"] == 2
    assert got[2] == got[3] == [("comment", ": heartbeat")]


def test_a_heartbeat_comes_only_after_a_whole_quiet_spell() -> None:
    feed = BoardFeed()
    quiet_s = 0.3

    async def steps(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
        loop = asyncio.get_running_loop()
        chunks = await collect(stream, 1)
        # Given a stream that began waiting, then got a line before its quiet spell was over
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(quiet_s * 2 / 3)
        feed.publish(line())
        chunks.append(await asyncio.wait_for(waiting, 2))
        sent = loop.time()
        # When nothing more comes
        chunks += await collect(stream, 1)
        # Then the heartbeat waits a whole spell from the line, not from the earlier wait
        assert loop.time() - sent >= quiet_s - 0.01
        return chunks

    chunks = run_stream(feed, steps, heartbeat_s=quiet_s)
    assert [[kind for kind, _ in frames(chunk)] for chunk in chunks] == [
        ["retry", "ready"],
        ["board"],
        ["comment"],
    ]


def test_an_empty_board_is_ready_at_once() -> None:
    feed = BoardFeed()

    async def steps(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
        return await collect(stream, 1)

    assert frames(b"".join(run_stream(feed, steps))) == [
        ("retry", "2000"),
        ("ready", '{"books": 0}'),
    ]


def test_the_stream_writes_everything_pending_as_one_chunk_newest_per_book() -> None:
    feed = BoardFeed()
    published = [
        line("yujinxiang.extra", 1),
        line("ganmibao.class_ii", 1),
        line("yujinxiang.extra", 2),
        line("xizhoumi.class_i", 1),
        line("ganmibao.class_ii", 2),
        line("yujinxiang.extra", 3),
    ]

    async def steps(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
        chunks = await collect(stream, 1)
        # While the stream is not being read, six lines for three books come in
        for each in published:
            feed.publish(each)
        return chunks + await collect(stream, 1)

    _, batch = run_stream(feed, steps, heartbeat_s=30)
    got = [json.loads(data) for _, data in frames(batch)]
    # One chunk: each book once, its newest line, in the order the books first came
    assert [(each["book"], each["trades"]) for each in got] == [
        ("yujinxiang.extra", 3),
        ("ganmibao.class_ii", 2),
        ("xizhoumi.class_i", 1),
    ]


@pytest.mark.parametrize("watchers", [1, 25])
def test_a_line_is_rendered_once_however_many_watchers_stream_it(watchers: int) -> None:
    feed = BoardFeed()
    feed.publish(line("ganmibao.extra", 1))
    feed.publish(line("xizhoumi.class_i", 1))
    changes = tape(40, seed=5, books=["ganmibao.extra", "xizhoumi.class_i", "yujinxiang.extra"])
    rendered: list[tuple[str, int]] = []

    def spy(each: BoardUpdated) -> dict[str, Any]:
        rendered.append((each.book, each.trades))
        return line_view(each)

    async def scenario() -> list[list[tuple[str, int]]]:
        streams = [board_events(feed, heartbeat_s=30, view=spy) for _ in range(watchers)]
        received: list[list[tuple[str, int]]] = [[] for _ in streams]

        async def read(stream: AsyncGenerator[bytes, None], into: list[tuple[str, int]]) -> None:
            async for chunk in stream:
                views = [json.loads(data) for kind, data in frames(chunk) if kind == "board"]
                into += [(view["book"], view["trades"]) for view in views]

        def every_stream_has(count: int) -> Callable[[], bool]:
            return lambda: all(len(r) == count for r in received)

        tasks = [asyncio.create_task(read(s, r)) for s, r in zip(streams, received, strict=True)]
        await until(every_stream_has(2), "the snapshots")
        for count, each in enumerate(changes, start=3):
            feed.publish(each)
            # Every stream takes the line before the next one comes: none is conflated
            await until(every_stream_has(count), "the line")
        feed.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return received

    received = asyncio.run(scenario())
    expected = [("ganmibao.extra", 1), ("xizhoumi.class_i", 1)] + [
        (each.book, each.trades) for each in changes
    ]
    assert all(got == expected for got in received)
    assert sorted(rendered) == sorted(expected)


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
