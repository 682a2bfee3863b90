"""What the weigh stations count, for Prometheus (``GET /metrics``).

Metrics live in the process's default registry, defined once here; every name starts with
``melon_ingest_``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS = Counter(
    "melon_ingest_scale_readings",
    "Scale readings received from the gateway, per station (rate() gives readings per second)",
    ["station"],
)
TIME_TO_STABLE = Histogram(
    "melon_ingest_time_to_stable_seconds",
    "From the first reading of a load to a stable weight, for weighings taken",
    ["station"],
    buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 30.0),
)
WEIGHING = Histogram(
    "melon_ingest_weighing_seconds",
    "A weighing request in the service: waiting its turn, the decision, the audit trail's "
    "acknowledgement and the LotWeighed event's",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LEDGER_APPEND = Histogram(
    "melon_ingest_ledger_append_seconds",
    "Sealing a weighing onto the audit trail until the broker acknowledged it; weighings take "
    "turns here, so it bounds the weighings a second",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOTS_WEIGHED = Counter(
    "melon_ingest_lots_weighed", "Lots weighed and ticketed", ["station", "mode"]
)
KG_BY_GRADE = Counter("melon_ingest_graded_kg", "Net kilograms graded, by grade", ["grade"])
REJECTED = Counter(
    "melon_ingest_rejected_inputs", "Requests and records refused, by reason", ["reason"]
)
LEDGER_HEAD = Gauge("melon_ingest_ledger_head_seq", "Sequence number of the audit trail's head")
LEDGER_DAMAGED = Gauge(
    "melon_ingest_ledger_damaged_records",
    "Records on the audit trail fenced off as damaged (unreadable, altered, out of line); each is "
    "on ingest.ledger.dlq, on /healthz and named by `melon-ingest audit verify`",
)
UNPUBLISHED = Gauge(
    "melon_ingest_unpublished_weighings",
    "Weighings in the audit trail not yet seen on lots.weighed (the relay retries them)",
)
