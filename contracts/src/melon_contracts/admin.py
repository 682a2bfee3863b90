"""Create the registry's topics on a broker, idempotently: ``melon-topics --bootstrap HOST:PORT``.

Existing topics are left as they are, except that a topic with fewer partitions than the registry
names is reported, because adding partitions would move keys between partitions.

The pricing worker's faust changelog is created here too, co-partitioned with ``book.commands``:
left to faust, it is declared while the worker starts, and a worker that asks for its metadata a
moment too early stops its matcher with a partition mismatch.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError

from melon_contracts.topics import BOOK_COMMANDS, TopicSpec, all_topics
from melon_contracts.transport import configure_logging

log = logging.getLogger("melon-topics")

FAUST_CHANGELOGS = {"melon-pricing-books-changelog": BOOK_COMMANDS.partitions}
"""Internal topics of the faust worker (app id ``melon-pricing``, table ``books``)."""

BOOK_RECORD_MAX_BYTES = 16 * 1024 * 1024
"""The largest order book the changelog takes as one record (about 70 000 resting bids)."""


def ensure_topics(
    bootstrap: str, replication_factor: int = 1, timeout_s: float = 60.0
) -> list[str]:
    """Create missing topics; return the names created. Waits for the broker up to ``timeout_s``."""
    admin = _connect(bootstrap, timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = [spec for spec in all_topics() if spec.name not in existing]
        created: list[str] = []
        deadline = time.monotonic() + timeout_s
        for spec in wanted:
            if _create(admin, _new_topic(spec, replication_factor), deadline):
                created.append(spec.name)
        for name, partitions in FAUST_CHANGELOGS.items():
            changelog = NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs={
                    "cleanup.policy": "compact",
                    "max.message.bytes": str(BOOK_RECORD_MAX_BYTES),
                },
            )
            if name not in existing and _create(admin, changelog, deadline):
                created.append(name)
        _report_short_topics(admin, existing)
        return created
    finally:
        admin.close()


def _create(admin: KafkaAdminClient, topic: NewTopic, deadline: float) -> bool:
    """Create one topic; a broker that has just started is still fenced for a moment, so a
    replication error is retried until the deadline."""
    while True:
        try:
            admin.create_topics([topic])
            return True
        except TopicAlreadyExistsError:
            return False
        except InvalidReplicationFactorError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _new_topic(spec: TopicSpec, replication_factor: int) -> NewTopic:
    return NewTopic(
        name=spec.name,
        num_partitions=spec.partitions,
        replication_factor=replication_factor,
        topic_configs=spec.config(),
    )


def _connect(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="melon-topics")
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _report_short_topics(admin: KafkaAdminClient, existing: set[str]) -> None:
    specs = {spec.name: spec for spec in all_topics() if spec.name in existing}
    if not specs:
        return
    for description in admin.describe_topics(list(specs)):
        # kafka-python 3 names the topic "name"; older releases called it "topic"
        spec = specs[description.get("name", description.get("topic"))]
        have = len(description["partitions"])
        if have < spec.partitions:
            log.warning(
                "%s has %d partitions; the registry names %d", spec.name, have, spec.partitions
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="melon-topics", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    configure_logging("INFO")
    created = ensure_topics(args.bootstrap, args.replication_factor, args.timeout)
    total = len(all_topics()) + len(FAUST_CHANGELOGS)
    kept = total - len(created)
    print(f"topics: {len(created)} created, {kept} already there ({total} in registry)")
    for name in created:
        print(f"  + {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
