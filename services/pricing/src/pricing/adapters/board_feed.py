"""The live price board's fan-out: one reader of ``board.updates`` per process, many watchers.

The feed keeps the latest line per book (the ``Board`` the API reads) and hands every line it
takes to each subscriber: the wall in the hall, merchants' phones and desks, each one an SSE
stream. A replay of the compacted topic on start teaches it the latest line of every book; after
that it follows the topic.

Watchers are many and some are slow (a phone on a weak signal). Every subscriber has a bounded
queue that the Kafka thread fills under a lock and the subscriber's event loop drains; the loop is
only woken with ``call_soon_threadsafe`` when the queue turns non-empty. A subscriber whose queue
is full is dropped at once: its stream ends (the browser reconnects and starts again from a fresh
snapshot) and nobody else waits for it or pays memory for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
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
DROPPED = Counter(
    "melon_pricing_board_subscribers_dropped",
    "Board streams ended because the watcher fell a whole queue behind",
)
DELIVERED = Counter(
    "melon_pricing_board_updates_delivered",
    "Board lines queued for a watcher (one per line and watcher)",
)

DEFAULT_QUEUE_SIZE = 256


class SubscriptionClosed(RuntimeError):
    """A subscription used outside its ``async with`` block."""


class Subscription:
    """One watcher of the board: the snapshot it started from, then every line after it.

    Use it as ``async with feed.subscribe() as lines: async for line in lines: ...``. Iteration
    ends when the feed dropped the watcher for falling behind (``dropped`` is then True) or the
    feed stopped.
    """

    def __init__(self, feed: BoardFeed, queue_size: int) -> None:
        self._feed = feed
        self._queue_size = queue_size
        self._items: deque[BoardUpdated] = deque()
        self._snapshot: deque[BoardUpdated] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._closed = False
        self.dropped = False
        self.snapshot: tuple[BoardUpdated, ...] = ()
        """Every book's line when the watcher started; read first."""

    @property
    def pending(self) -> int:
        """Lines queued and not yet read (the snapshot not counted)."""
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    async def __aenter__(self) -> Subscription:
        if self._loop is not None:
            raise SubscriptionClosed("a subscription is entered once")
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self.snapshot = tuple(self._feed._register(self))
        self._snapshot.extend(self.snapshot)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._feed._unregister(self)
        self._end()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BoardUpdated:
        line = await self.get()
        if line is None:
            raise StopAsyncIteration
        return line

    async def get(self) -> BoardUpdated | None:
        """The next line, waiting for it; None once the stream has ended."""
        if self._ready is None:
            raise SubscriptionClosed("read a subscription inside `async with`")
        if self._snapshot:
            return self._snapshot.popleft()
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    return None
                self._ready.clear()
            await self._ready.wait()

    def _offer(self, line: BoardUpdated) -> bool:
        """Queue a line from any thread; False when the watcher is gone or was just dropped."""
        with self._lock:
            if self._closed:
                return False
            overflow = len(self._items) >= self._queue_size
            if overflow:
                self._closed = True
                self.dropped = True
                self._items.clear()
            wake = overflow or not self._items
            if not overflow:
                self._items.append(line)
        if wake and not self._wake():
            return False
        return not overflow

    def _end(self) -> None:
        with self._lock:
            self._closed = True
            self._items.clear()
        self._wake()

    def _wake(self) -> bool:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return True
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:  # the watcher's loop is closed: nobody is reading any more
            with self._lock:
                self._closed = True
                self._items.clear()
            return False
        return True


class BoardFeed:
    """The latest line per book plus its fan-out to live subscribers; safe across threads.

    Fed by a ``TopicReader`` (``from_kafka``) or directly with ``publish`` (tests, or a reader the
    caller runs). A line older than the one the board holds is ignored and not fanned out.
    """

    def __init__(
        self,
        board: Board | None = None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        reader: Callable[[BoardFeed], TopicReader] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("a subscriber's queue holds at least one line")
        self.board = board if board is not None else Board()
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self.reader: TopicReader | None = reader(self) if reader is not None else None

    @classmethod
    def from_kafka(
        cls,
        bootstrap: str,
        *,
        board: Board | None = None,
        dead_letters: Publisher | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> BoardFeed:
        """A feed with its own groupless reader: replays the compacted topic, then follows it."""

        def reader(feed: BoardFeed) -> TopicReader:
            return TopicReader(
                "pricing", bootstrap, [BOARD_UPDATES], feed.handle, dead_letters=dead_letters
            )

        return cls(board, queue_size=queue_size, reader=reader)

    def start(self) -> None:
        if self.reader is not None:
            self.reader.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading and end every open stream, so the web server can shut down."""
        if self.reader is not None:
            self.reader.stop(timeout_s)
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for subscription in subscribers:
            SUBSCRIBERS.dec()
            subscription._end()

    def handle(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        """The reader's handler: anything on ``board.updates`` that is not a line is refused."""
        if not isinstance(message, BoardUpdated):
            raise ValueError(f"{type(message).__name__} is no board line")
        if key is not None and key != message.book:
            raise ValueError(f"key {key!r} does not name the line's book {message.book!r}")
        self.publish(message)

    def publish(self, line: BoardUpdated) -> bool:
        """Take a line and fan it out; False when the board already holds a newer one."""
        with self._lock:
            self.board.update(line)
            if self.board.line(line.book) is not line:
                return False
            gone = []
            delivered = 0
            for subscription in self._subscribers:
                if subscription._offer(line):
                    delivered += 1
                else:
                    gone.append(subscription)
            for subscription in gone:
                self._subscribers.discard(subscription)
        DELIVERED.inc(delivered)
        if gone:
            SUBSCRIBERS.dec(len(gone))
            dropped = sum(1 for subscription in gone if subscription.dropped)
            if dropped:
                DROPPED.inc(dropped)
                log.info("dropped %d board watcher(s) a whole queue behind", dropped)
        return True

    def latest(self) -> list[BoardUpdated]:
        """Every book's latest line, by book key."""
        return self.board.lines()

    def subscribe(self) -> Subscription:
        """A new watcher; it starts (snapshot first) when entered with ``async with``."""
        return Subscription(self, self._queue_size)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _register(self, subscription: Subscription) -> list[BoardUpdated]:
        # Under the feed's lock so that no line falls between the snapshot and the first update,
        # and none arrives twice.
        with self._lock:
            self._subscribers.add(subscription)
            snapshot = self.board.lines()
        SUBSCRIBERS.inc()
        return snapshot

    def _unregister(self, subscription: Subscription) -> None:
        with self._lock:
            present = subscription in self._subscribers
            self._subscribers.discard(subscription)
        if present:
            SUBSCRIBERS.dec()
