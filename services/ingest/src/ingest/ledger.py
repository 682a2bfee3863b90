"""The audit trail on Kafka: sealing and appending records, reading them back, and the CLI.

``ingest.ledger`` has one partition, so the broker keeps one total order, and one writer (the
ingest service). ``Ledger.append`` seals a record onto the head of the chain and returns only once
the broker acknowledged it. When an append fails the record may still have reached the log (the
acknowledgement, not the write, may be what was lost), so the ledger marks itself uncertain and
reads the log's tail before sealing anything else: a sequence number is never used twice.

A record on the log that does not chain (unreadable, altered, out of line) is fenced off as
``ingest.domain.ledger`` describes: it is not applied, it is logged, sent to
``ingest.ledger.dlq`` with its offset and reason and counted, and before sealing anything else
the ledger appends a break record that acknowledges it, voiding any number it claims. So one
damaged record never stops the weigh stations, and the damage stays on the trail for good.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from ingest import metrics
from ingest.domain.ledger import BREAK_KIND, GENESIS_HASH, Chain, Damage, Finding, seal, verify
from melon_contracts.events import LedgerRecord
from melon_contracts.topics import INGEST_LEDGER, by_name
from melon_contracts.transport import KAFKA_CLIENT_TIMING, Publisher, PublishFailed, dead_letter

log = logging.getLogger(__name__)

Apply = Callable[[LedgerRecord], None]
RawSource = Callable[[int], Iterator[tuple[int, bytes | None]]]
"""Reads the log from an offset: yields (offset, value bytes) up to the end as of the call."""

SYSTEM_ACTOR = "melon-ingest"
"""Who the service's own records (defaults, break records) are by."""


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


def not_a_record(raw: Mapping[str, Any]) -> str | None:
    """Why a chained record is not a ``LedgerRecord``, or None."""
    try:
        LedgerRecord.model_validate(raw)
    except ValidationError as exc:
        return _first_error(exc)
    return None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return f"{where}: {first['msg']}"


class Ledger:
    """The chain's head and the one way to extend it; thread-safe."""

    def __init__(
        self, publisher: Publisher, source: RawSource, apply: Apply, actor: str = SYSTEM_ACTOR
    ) -> None:
        self._publisher = publisher
        self._source = source
        self._apply = apply
        self._actor = actor
        self._lock = threading.RLock()
        self._chain = Chain()
        self._next_offset = 0
        self._uncertain = True
        self._own_from: int | None = None
        """The seq of this process's first append: from there on the head's records are ours."""
        self._letters: dict[int, bytes | None] = {}
        """The values of records fenced off in this process and not yet acknowledged."""

    @property
    def lock(self) -> threading.RLock:
        """Held across decide-append-apply, so two requests never seal onto the same head."""
        return self._lock

    @property
    def head_seq(self) -> int:
        return self._chain.head_seq

    @property
    def head_hash(self) -> str:
        return self._chain.head_hash

    @property
    def damage(self) -> tuple[Finding, ...]:
        """Every record of the trail fenced off so far, with the break that acknowledged it."""
        return self._chain.findings

    def catch_up(self) -> int:
        """Apply every record the log has beyond the head, fence off the ones that do not chain
        and acknowledge them on the trail; returns how many records were applied."""
        applied = 0
        with self._lock:
            for offset, value in self._source(self._next_offset):
                raw = _parse(value)
                if not self._ours(raw):
                    applied += self._take(offset, raw, value)
                self._next_offset = offset + 1
            # Certain only once the damage read is acknowledged: a dead letter or break the
            # broker did not take is tried again before the next record is sealed.
            self._acknowledge()
            self._uncertain = False
        return applied

    def _ours(self, raw: Mapping[str, Any] | None) -> bool:
        """A record this process appended, read back after an append's acknowledgement was lost.

        A foreign record claiming one of those seqs is passed over here too; the next start, which
        reads the whole trail, fences it off.
        """
        if raw is None or self._own_from is None:
            return False
        seq = raw.get("seq")
        return isinstance(seq, int) and self._own_from <= seq <= self.head_seq

    def _take(self, offset: int, raw: dict[str, Any] | None, value: bytes | None) -> int:
        """Apply a record read from the log, or fence it off; 1 if it was applied."""
        finding = self._chain.examine(offset, raw)
        record: LedgerRecord | None = None
        if finding is None:
            assert raw is not None
            try:
                record = LedgerRecord.model_validate(raw)
            except ValidationError as exc:
                finding = self._chain.finding(
                    offset, raw, Damage.UNREADABLE, f"not a ledger record: {_first_error(exc)}"
                )
        if finding is not None:
            self._chain.fence(finding)
            self._letters[offset] = value
            log.error("audit trail record fenced off: %s", finding.describe())
            return 0
        assert record is not None and raw is not None
        self._apply(record)
        self._chain.extend(raw)
        return 1

    def _acknowledge(self) -> None:
        """Dead-letter the records fenced off and seal break records that acknowledge them."""
        while (breach := self._chain.breach()) is not None:
            seq, body = breach
            named = [entry["offset"] for entry in body["damaged"]]
            pending = {finding.offset: finding for finding in self._chain.unacknowledged}
            for offset in named:
                if offset in self._letters:
                    self._dead_letter(pending[offset], self._letters[offset])
            record = sealed(
                seq,
                self.head_hash,
                BREAK_KIND,
                self._actor,
                None,
                body,
                correlation_id=f"{INGEST_LEDGER.name}:0:{named[0]}",
            )
            self._seal_on(record)
            for offset in named:
                self._letters.pop(offset, None)
            log.warning(
                "audit trail break sealed at seq %d: %d damaged record(s) acknowledged "
                "(offsets %s), onto seq %d",
                seq,
                len(named),
                named,
                body["last_good_seq"],
            )
        damage = self._chain.findings
        metrics.LEDGER_DAMAGED.set(len(damage))
        if damage:
            log.warning(
                "the audit trail holds %d damaged record(s), fenced off: run "
                "`melon-ingest audit verify`",
                len(damage),
            )

    def _dead_letter(self, finding: Finding, value: bytes | None) -> None:
        # The source gives no keys; the letter is named by the record's place on the trail, as
        # the break record is, and its event id comes from that place, so sending it again after
        # a failed attempt gives the same letter.
        reason = f"{finding.damage.value}: {finding.detail}"
        letter = dead_letter("ingest", INGEST_LEDGER, 0, finding.offset, None, value, reason)
        self._publisher.publish(by_name(INGEST_LEDGER.dlq), letter.correlation_id, letter)

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
            self._seal_on(record)
            return record

    def _seal_on(self, record: LedgerRecord) -> None:
        """Publish a record sealed onto the head, then apply it; the caller holds the lock."""
        try:
            self._publisher.publish(INGEST_LEDGER, record.kind, record)
        except PublishFailed:
            self._uncertain = True
            raise
        self._apply(record)
        self._chain.extend(record.model_dump(mode="json"))
        if self._own_from is None:
            self._own_from = record.seq


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
            **KAFKA_CLIENT_TIMING,
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


def _records_from_file(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """An export's records, each line's number from 0 standing for the offset it was read at."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            yield number, _parse(line.rstrip(b"\n"))


def _records_from_topic(bootstrap: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    for offset, value in kafka_source(bootstrap)(0):
        yield offset, _parse(value)


def audit_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="melon-ingest audit",
        description="Check or export the weigh stations' hash-chained audit trail.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "verify",
        help="name every damaged record (altered, missing, unreadable) and check the chain past "
        "it; exit 1 if there is one",
    )
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
    verdict = verify(source, validate=not_a_record)
    print(verdict.summary())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(audit_main(sys.argv[1:]))
