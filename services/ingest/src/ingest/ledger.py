"""The audit trail on Kafka: sealing and appending records, reading them back, and the CLI.

``ingest.ledger`` has one partition, so the broker keeps one total order, and one writer (the
ingest service). ``Ledger.append`` seals a record onto the head of the chain and returns only once
the broker acknowledged it. When an append fails the record may still have reached the log (the
acknowledgement, not the write, may be what was lost), so the ledger marks itself uncertain and
reads the log's tail before sealing anything else: a sequence number is never used twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ingest.domain.ledger import GENESIS_HASH, seal, verify
from melon_contracts.events import LedgerRecord
from melon_contracts.topics import INGEST_LEDGER
from melon_contracts.transport import Publisher, PublishFailed

Apply = Callable[[LedgerRecord], None]
RawSource = Callable[[int], Iterator[tuple[int, bytes | None]]]
"""Reads the log from an offset: yields (offset, value bytes) up to the end as of the call."""


class LedgerBroken(RuntimeError):
    """The log read back does not chain: a record was altered, removed or forged."""


def sealed(
    seq: int,
    prev_hash: str,
    kind: str,
    actor: str,
    station_id: str | None,
    body: Mapping[str, Any],
    correlation_id: str,
) -> LedgerRecord:
    """A record sealed onto ``prev_hash``; its hash covers the JSON the topic will carry."""
    draft = LedgerRecord(
        correlation_id=correlation_id,
        seq=seq,
        kind=kind,
        actor=actor,
        station_id=station_id,
        body=dict(body),
        prev_hash=prev_hash,
        hash=GENESIS_HASH,
    )
    return draft.model_copy(update={"hash": seal(draft.model_dump(mode="json"))})


class Ledger:
    """The chain's head and the one way to extend it; thread-safe."""

    def __init__(self, publisher: Publisher, source: RawSource, apply: Apply) -> None:
        self._publisher = publisher
        self._source = source
        self._apply = apply
        self._lock = threading.RLock()
        self.head_seq = 0
        self.head_hash = GENESIS_HASH
        self._next_offset = 0
        self._uncertain = True

    @property
    def lock(self) -> threading.RLock:
        """Held across decide-append-apply, so two requests never seal onto the same head."""
        return self._lock

    def catch_up(self) -> int:
        """Apply every record the log has beyond the head; returns how many were applied."""
        applied = 0
        with self._lock:
            for offset, value in self._source(self._next_offset):
                self._next_offset = offset + 1
                raw = _parse(value)
                if raw is None or not isinstance(raw.get("seq"), int):
                    raise LedgerBroken(f"offset {offset}: unreadable record")
                if raw["seq"] <= self.head_seq:
                    continue  # our own append, applied when it was acknowledged
                self._check_link(offset, raw)
                record = LedgerRecord.model_validate(raw)
                self._apply(record)
                self.head_seq, self.head_hash = record.seq, record.hash
                applied += 1
            self._uncertain = False
        return applied

    def _check_link(self, offset: int, raw: Mapping[str, Any]) -> None:
        if raw["seq"] != self.head_seq + 1:
            raise LedgerBroken(f"offset {offset}: seq {raw['seq']} follows seq {self.head_seq}")
        if raw.get("prev_hash") != self.head_hash or seal(raw) != raw.get("hash"):
            raise LedgerBroken(f"offset {offset}: seq {raw['seq']} does not chain or is altered")

    def append(
        self,
        kind: str,
        actor: str,
        body: Mapping[str, Any],
        *,
        station_id: str | None = None,
        correlation_id: str,
    ) -> LedgerRecord:
        with self._lock:
            if self._uncertain:
                self.catch_up()
            record = sealed(
                self.head_seq + 1,
                self.head_hash,
                kind,
                actor,
                station_id,
                body,
                correlation_id,
            )
            try:
                self._publisher.publish(INGEST_LEDGER, kind, record)
            except PublishFailed:
                self._uncertain = True
                raise
            self._apply(record)
            self.head_seq, self.head_hash = record.seq, record.hash
            return record


def _parse(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def kafka_source(bootstrap: str) -> RawSource:
    """Reads ``ingest.ledger`` from an offset to its end with a short-lived plain consumer."""

    def read(start: int) -> Iterator[tuple[int, bytes | None]]:
        tp = TopicPartition(INGEST_LEDGER.name, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="melon-ingest-ledger",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            if start >= end:
                return
            consumer.seek(tp, start)
            while consumer.position(tp) < end:
                for record in consumer.poll(timeout_ms=500).get(tp, []):
                    if record.offset < end:
                        yield record.offset, record.value
        finally:
            consumer.close()

    return read


def memory_source(log: list[bytes]) -> RawSource:
    """The log as a list of values, for tests."""

    def read(start: int) -> Iterator[tuple[int, bytes | None]]:
        yield from ((offset, log[offset]) for offset in range(start, len(log)))

    return read


# -- the CLI: melon-ingest audit verify|export -------------------------------------------------


def _records_from_file(path: Path) -> Iterator[dict[str, Any] | None]:
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield _parse(line)


def _records_from_topic(bootstrap: str) -> Iterator[dict[str, Any] | None]:
    for _, value in kafka_source(bootstrap)(0):
        yield _parse(value)


def audit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="melon-ingest audit",
        description="Check or export the weigh stations' hash-chained audit trail.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="report the first altered or missing record")
    check.add_argument("--bootstrap", default="127.0.0.1:9092", help="read the ledger topic")
    check.add_argument("--file", type=Path, help="verify an exported JSON-lines file instead")
    export = sub.add_parser("export", help="write the ledger as JSON lines")
    export.add_argument("out", type=Path)
    export.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args(argv)

    if args.command == "export":
        count = 0
        with args.out.open("wb") as out:
            for _, value in kafka_source(args.bootstrap)(0):
                out.write((value or b"").rstrip(b"\n") + b"\n")
                count += 1
        print(f"exported {count} ledger records to {args.out}")
        return 0
    source = _records_from_file(args.file) if args.file else _records_from_topic(args.bootstrap)
    verdict = verify(source)
    print(verdict.summary())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(audit_main(sys.argv[1:]))
