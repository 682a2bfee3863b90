"""Follow one lot (or bid, or plate) across every topic: ``python -m melon_devkit.trace MQ-0100``.

Reads each registry topic from the beginning with a plain consumer (no group, nothing committed)
and prints the events whose correlation id or key is the one asked for, oldest first. A lot put on
a truck is found inside the yard's assignments, and the truck's visit (check-in, bay, loaded,
departed) is followed from there.
"""

from __future__ import annotations

import argparse
import sys

from kafka import KafkaConsumer, TopicPartition

from melon_contracts.codec import UndecodableMessage, decode
from melon_contracts.envelope import Message
from melon_contracts.events import ShipmentAssigned, TruckCheckedIn
from melon_contracts.topics import DISPATCH_YARD, TopicSpec, all_topics


def read_topic(bootstrap: str, spec: TopicSpec) -> list[tuple[str | None, Message]]:
    """Everything on a topic so far, decoded against the registry's model."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    try:
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[tuple[str | None, Message]] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    key = None if record.key is None else record.key.decode("utf-8", "replace")
                    try:
                        records.append((key, decode(spec, record.value)))
                    except UndecodableMessage:
                        continue
        return records
    finally:
        consumer.close()


def _about(message: Message, key: str | None, wanted: str, visits: set[str]) -> bool:
    """Whether a record is about the id asked for, or about the truck visit that carried it."""
    if wanted in (message.correlation_id, key):
        return True
    if isinstance(message, ShipmentAssigned):
        lines = message.lines
        if any(wanted in (line.lot_id, line.trade_id) for line in lines):
            visits.add(str(message.visit_id))
            return True
    visit = getattr(message, "visit_id", None)
    if isinstance(message, TruckCheckedIn):
        visit = message.event_id
    return visit is not None and str(visit) in visits


def trace(bootstrap: str, wanted: str) -> list[tuple[str, str | None, Message]]:
    """Every record about ``wanted``; for a lot on a truck, also that truck's visit (in the yard's
    log, records are keyed by plate and the lots are inside the assignments)."""
    visits: set[str] = set()
    found: list[tuple[str, str | None, Message]] = []
    for spec in all_topics():
        records = read_topic(bootstrap, spec)
        if spec.name == DISPATCH_YARD.name:
            # Assignments name the visits first, then the visit's other records can be picked.
            for key, message in records:
                if isinstance(message, ShipmentAssigned):
                    _about(message, key, wanted, visits)
        found.extend(
            (spec.name, key, message)
            for key, message in records
            if _about(message, key, wanted, visits)
        )
    return sorted(found, key=lambda row: row[2].occurred_at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="melon_devkit.trace", description=__doc__)
    parser.add_argument("id", help="a lot id, bid id or plate")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args(argv)
    rows = trace(args.bootstrap, args.id)
    for topic, key, message in rows:
        when = message.occurred_at.strftime("%H:%M:%S.%f")[:-3]
        detail = message.model_dump_json(
            exclude={"event_id", "schema_version", "occurred_at", "correlation_id", "type"}
        )
        print(f"{when}  {topic:<22} {type(message).__name__:<17} key={key}  {detail}")
    if not rows:
        print(f"nothing on any topic about {args.id}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
