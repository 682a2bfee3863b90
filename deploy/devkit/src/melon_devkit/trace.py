"""Follow one lot (or bid, or plate) across every topic: ``python -m melon_devkit.trace MQ-0100``.

Reads each registry topic from the beginning with a plain consumer (no group, nothing committed)
and prints the events whose correlation id or key is the one asked for, oldest first.
"""

from __future__ import annotations

import argparse
import sys

from kafka import KafkaConsumer, TopicPartition

from melon_contracts.codec import UndecodableMessage, decode
from melon_contracts.envelope import Message
from melon_contracts.topics import TopicSpec, all_topics


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


def trace(bootstrap: str, wanted: str) -> list[tuple[str, str | None, Message]]:
    found = [
        (spec.name, key, message)
        for spec in all_topics()
        for key, message in read_topic(bootstrap, spec)
        if wanted in (message.correlation_id, key)
    ]
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
