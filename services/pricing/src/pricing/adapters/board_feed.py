"""The live price board's fan-out: one reader of ``board.updates`` per process, many watchers.

The feed keeps the latest line per book (the ``Board`` the API reads) and hands the lines it takes
to each subscriber: the wall in the hall, merchants' phones and desks, each one an SSE stream. A
replay of the compacted topic on start teaches it the latest line of every book; after that it
follows the topic.

A board line carries its book's whole state (best bid, depth, last, high, low, VWAP, volume,
change), so a watcher that is behind needs only the newest line of each book. Every subscriber
keeps at most one pending line per book: a newer line replaces the pending one of its book, which
keeps its place in the order the books first became pending, and is counted as conflated. Memory
per watcher is bounded by the number of books, a slow watcher (a phone on a weak signal) costs
the others nothing, and no watcher is dropped for being slow. A watcher leaves when its stream
closes (the client went away), when the feed stops, or when its event loop is gone.

The Kafka thread conflates under the feed's lock and wakes an event loop once per line for all of
that loop's watchers whose pending set just turned non-empty; the loop wakes them a slice at a
time, so other requests get their turn in between. A woken watcher takes everything pending at
once, so its stream writes one chunk per wake however many lines that carries: the busier the
loop, the more lines a wake carries, and the cost per line falls as it does. Each line is wrapped
once in a ``Posted`` that keeps its rendered frame, so it is rendered once for all watchers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from prometheus_client import Counter, Gauge

from melon_contracts.envelope import Message
from melon_contracts.events import BoardUpdated
from melon_contracts.topics import BOARD_UPDATES, TopicSpec
from melon_contracts.transport import Publisher, TopicReader
from pricing.adapters.board_view import Board

log = logging.getLogger(__name__)

SUBSCRIBERS = Gauge(
    "melon_pricing_board_subscribers", "Live price-board streams open right now (wall, merchants)"
)
DELIVERED = Counter(
    "melon_pricing_board_updates_delivered",
    "Board lines handed to a watcher's stream (one per line and watcher; conflated lines not "
    "counted)",
)
CONFLATED = Counter(
    "melon_pricing_board_updates_conflated",
    "Board lines a newer line of the same book replaced before the watcher's stream took them",
)

WAKE_SLICE = 8
"""Watchers woken per turn of the event loop; see ``_wake_all``. With a thousand watchers at twenty
lines a second, ``/metrics`` answered in about a third of the time it took with 64."""


class SubscriptionClosed(RuntimeError):
    """A subscription used outside its ``async with`` block."""


class Posted:
    """A line as the feed hands it to every watcher, with its rendering once a stream asked.

    Shared by all watchers, so ``frame`` renders a line once however many streams send it.
    """

    __slots__ = ("_frame", "_render", "line")

    def __init__(self, line: BoardUpdated) -> None:
        self.line = line
        self._render: Callable[[BoardUpdated], bytes] | None = None
        self._frame = b""

    def frame(self, render: Callable[[BoardUpdated], bytes]) -> bytes:
        """``render(line)``, computed on the first call and kept for the same ``render``."""
        if self._render is not render:
            self._frame = render(self.line)
            self._render = render
        return self._frame

    def __repr__(self) -> str:
        return f"Posted({self.line.book!r}, trades={self.line.trades})"


class Subscription:
    """One watcher of the board: the snapshot it started from, then batches of newer lines.

    Use it as ``async with feed.subscribe() as watcher: batch = await watcher.take(...)``. A batch
    holds at most one line per book, the newest the feed had when the watcher took it.
    """

    def __init__(self, feed: BoardFeed) -> None:
        self._feed = feed
        # Both guarded by the feed's lock: the Kafka thread writes them, the watcher's loop reads.
        self._pending: dict[str, Posted] = {}
        self._closed = False
        # Only touched on the watcher's own loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._idle_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.snapshot: tuple[Posted, ...] = ()
        """Every book's line when the watcher started, by book key; sent first."""

    @property
    def pending(self) -> int:
        """Lines waiting to be taken: at most one per book (the snapshot not counted)."""
        with self._feed._lock:
            return len(self._pending)

    @property
    def closed(self) -> bool:
        with self._feed._lock:
            return self._closed

    async def __aenter__(self) -> Subscription:
        if self._loop is not None:
            raise SubscriptionClosed("a subscription is entered once")
        self._loop = asyncio.get_running_loop()
        self.snapshot = tuple(self._feed._register(self, self._loop))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None:
            self._feed._unregister(self, self._loop)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def take(self, idle_s: float | None = None) -> list[Posted] | None:
        """Every pending line at once, books in the order they became pending; waits for one.

        An empty list when ``idle_s`` passes with nothing to take (time for a heartbeat); None
        once the stream has ended.
        """
        loop = self._loop
        if loop is None:
            raise SubscriptionClosed("read a subscription inside `async with`")
        while True:
            with self._feed._lock:
                if self._pending:
                    taken, self._pending = self._pending, {}
                    break
                if self._closed:
                    return None
                waiter = self._waiter = loop.create_future()
            if idle_s is not None:
                self._arm(loop, loop.time() + idle_s)
            try:
                lines_came = await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
            if not lines_came:
                return []
        DELIVERED.inc(len(taken))
        return list(taken.values())

    def _arm(self, loop: asyncio.AbstractEventLoop, idle_at: float) -> None:
        # One timer per watcher that a wake only moves forward (it fires, sees the later time and
        # sets itself again), instead of a timer made and cancelled on every wait: a watcher
        # woken twenty times a second pays a float for its heartbeat, not a heap push and pop.
        self._idle_at = idle_at
        timer = self._timer
        if timer is not None and timer.when() > idle_at:
            timer.cancel()
            timer = None
        if timer is None:
            self._timer = loop.call_at(idle_at, self._idle)

    def _idle(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait sets the timer again
        loop = waiter.get_loop()
        # A timer may fire a clock tick early; a heartbeat a millisecond early is as good.
        if self._idle_at - loop.time() > 0.001:
            self._timer = loop.call_at(self._idle_at, self._idle)
            return
        self._waiter = None
        waiter.set_result(False)

    def _wake(self) -> None:
        """On the watcher's loop: lines are pending, or the stream ended."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(True)


def _wake_all(subscriptions: list[Subscription], start: int = 0) -> None:
    """Wake the watchers a slice at a time, the rest on the loop's next turn.

    Each woken watcher writes its chunk on the next turn; a thousand at once would hold the loop
    for tens of milliseconds before it looked at a socket again, and a bid or a ``/metrics``
    request, which needs several turns (its thread-pool hop among them), would wait that long at
    each. A small slice per turn lets them in between.
    """
    end = start + WAKE_SLICE
    for subscription in subscriptions[start:end]:
        subscription._wake()
    if end < len(subscriptions):
        asyncio.get_running_loop().call_soon(_wake_all, subscriptions, end)


class BoardFeed:
    """The latest line per book plus its fan-out to live subscribers; safe across threads.

    Fed by a ``TopicReader`` (``from_kafka``) or directly with ``publish`` (tests, or a reader the
    caller runs). A line older than the one the board holds is ignored and not fanned out.
    """

    def __init__(
        self,
        board: Board | None = None,
        *,
        reader: Callable[[BoardFeed], TopicReader] | None = None,
    ) -> None:
        self.board = board if board is not None else Board()
        self._posted: dict[str, Posted] = {}
        # Watchers by the event loop they read on (one, the web server's, outside tests), so a
        # line wakes each loop once and a closed loop is noticed whatever its watchers hold.
        self._loops: dict[asyncio.AbstractEventLoop, set[Subscription]] = {}
        self._lock = threading.Lock()
        self.reader: TopicReader | None = reader(self) if reader is not None else None

    @classmethod
    def from_kafka(
        cls,
        bootstrap: str,
        *,
        board: Board | None = None,
        dead_letters: Publisher | None = None,
    ) -> BoardFeed:
        """A feed with its own groupless reader: replays the compacted topic, then follows it."""

        def reader(feed: BoardFeed) -> TopicReader:
            return TopicReader(
                "pricing", bootstrap, [BOARD_UPDATES], feed.handle, dead_letters=dead_letters
            )

        return cls(board, reader=reader)

    def start(self) -> None:
        if self.reader is not None:
            self.reader.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading and end every open stream, so the web server can shut down."""
        if self.reader is not None:
            self.reader.stop(timeout_s)
        with self._lock:
            loops, self._loops = self._loops, {}
            for group in loops.values():
                for subscription in group:
                    subscription._closed = True
                    subscription._pending.clear()
        SUBSCRIBERS.dec(sum(len(group) for group in loops.values()))
        self._wake([(loop, list(group)) for loop, group in loops.items()])

    def handle(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        """The reader's handler: anything on ``board.updates`` that is not a line is refused."""
        if not isinstance(message, BoardUpdated):
            raise ValueError(f"{type(message).__name__} is no board line")
        if key is not None and key != message.book:
            raise ValueError(f"key {key!r} does not name the line's book {message.book!r}")
        self.publish(message)

    def publish(self, line: BoardUpdated) -> bool:
        """Take a line and fan it out; False when the board already holds a newer one."""
        posted = Posted(line)
        book = line.book
        wakes: list[tuple[asyncio.AbstractEventLoop, list[Subscription]]] = []
        closed: list[asyncio.AbstractEventLoop] = []
        conflated = 0
        with self._lock:
            self.board.update(line)
            if self.board.line(book) is not line:
                return False
            self._posted[book] = posted
            for loop, group in self._loops.items():
                if loop.is_closed():
                    closed.append(loop)
                    continue
                woken = []
                for subscription in group:
                    pending = subscription._pending
                    if not pending:
                        woken.append(subscription)
                    elif book in pending:
                        conflated += 1
                    # A book already pending keeps its place: only its line is replaced.
                    pending[book] = posted
                if woken:
                    wakes.append((loop, woken))
        if conflated:
            CONFLATED.inc(conflated)
        for loop in closed:
            self._forget(loop)
        self._wake(wakes)
        return True

    def latest(self) -> list[BoardUpdated]:
        """Every book's latest line, by book key."""
        return self.board.lines()

    def subscribe(self) -> Subscription:
        """A new watcher; it starts (snapshot first) when entered with ``async with``."""
        return Subscription(self)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._loops.values())

    def _register(
        self, subscription: Subscription, loop: asyncio.AbstractEventLoop
    ) -> list[Posted]:
        # Under the feed's lock so that no line falls between the snapshot and the first update,
        # and none arrives twice.
        with self._lock:
            self._loops.setdefault(loop, set()).add(subscription)
            snapshot = [self._posted_of(line) for line in self.board.lines()]
        SUBSCRIBERS.inc()
        return snapshot

    def _posted_of(self, line: BoardUpdated) -> Posted:
        posted = self._posted.get(line.book)
        if posted is None or posted.line is not line:
            # The board had the line before this feed did (a board shared with it, filled first).
            posted = self._posted[line.book] = Posted(line)
        return posted

    def _unregister(self, subscription: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            group = self._loops.get(loop)
            present = group is not None and subscription in group
            if group is not None:
                group.discard(subscription)
                if not group:
                    del self._loops[loop]
            subscription._closed = True
            subscription._pending.clear()
        if present:
            SUBSCRIBERS.dec()

    def _wake(self, wakes: list[tuple[asyncio.AbstractEventLoop, list[Subscription]]]) -> None:
        """Wake each loop once for all of its watchers that have lines now or have ended."""
        for loop, woken in wakes:
            try:
                loop.call_soon_threadsafe(_wake_all, woken)
            except RuntimeError:  # the loop is closed: nobody is reading there any more
                self._forget(loop)

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            gone = self._loops.pop(loop, set())
            for subscription in gone:
                subscription._closed = True
                subscription._pending.clear()
        if gone:
            SUBSCRIBERS.dec(len(gone))
            log.info("forgot %d board watcher(s) whose event loop is closed", len(gone))
