"""What the matcher counts, for Prometheus (the worker serves it on PRICING_WORKER_METRICS_PORT).

Bids and trades per second are ``rate()`` of the counters; match latency runs from the command's
``occurred_at`` (when the API or the lot intake sent it) to the moment its trades were
acknowledged by the broker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faust.types import TP
from prometheus_client import Counter, Gauge, Histogram

from melon_contracts.envelope import Message
from pricing.domain.board import BoardLine

COMMANDS = Counter("melon_pricing_book_commands", "Book commands applied, by kind", ["kind"])
TRADES = Counter("melon_pricing_trades", "Trades executed")
REJECTED = Counter(
    "melon_pricing_rejected_commands", "Commands the matcher refused or dead-lettered", ["reason"]
)
MATCH_LATENCY = Histogram(
    "melon_pricing_match_latency_seconds",
    "From a command's occurred_at to its trades acknowledged",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH = Histogram(
    "melon_pricing_match_batch_commands",
    "Commands the matcher applied per wait for the broker: 1 when idle, more under a backlog",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
PUBLISH_RETRIES = Counter(
    "melon_pricing_publish_retries",
    "Times a batch's outputs were sent again because the broker did not take them",
)
REPEATS = Counter(
    "melon_pricing_commands_repeated",
    "Commands delivered again after the matcher had applied them, and skipped",
)
FETCHED = Counter(
    "melon_pricing_commands_fetched",
    "Commands the stream did not deliver in order, read from the log by the matcher itself",
    ["why"],
)
BID_DEPTH = Gauge("melon_pricing_bid_depth_kg", "Kilograms bid and resting, per book", ["book"])
OFFERED = Gauge("melon_pricing_offered_kg", "Kilograms of lots resting, per book", ["book"])
LAG = Gauge(
    "melon_pricing_consumer_lag",
    "Commands behind the end of book.commands, per partition, as the matcher last saw it",
    ["partition"],
)


def observe_trades(command: Message, count: int) -> None:
    TRADES.inc(count)
    MATCH_LATENCY.observe((datetime.now(UTC) - command.occurred_at).total_seconds())


def observe_board(line: BoardLine) -> None:
    BID_DEPTH.labels(line.book).set(line.bid_depth_g / 1000)
    OFFERED.labels(line.book).set(line.offered_g / 1000)


def observe_lag(app: Any, topic: str, partition: int, offset: int) -> None:
    """Lag = the partition's high watermark - the offset being processed - 1."""
    try:
        highwater = app.consumer.highwater(TP(topic, partition))
    except Exception:  # a consumer between rebalances has no watermark to give
        return
    if highwater is not None:
        LAG.labels(str(partition)).set(max(0, highwater - offset - 1))
