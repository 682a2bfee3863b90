"""The audit trail's hash chain: how a record is sealed and how a whole log is verified.

Each record is sealed with SHA-256 over the canonical JSON of every field but ``hash`` itself, and
that includes ``prev_hash``, the seal of the record before it. Altering any field of any record
changes its seal; removing, inserting or reordering a record breaks the sequence numbers or the
link to the previous seal. ``verify`` walks a log and names the first record that is missing,
altered, out of place or unreadable.

Records are handled as plain JSON mappings here, so a log that was tampered with into something
the event model would refuse to load can still be verified and the damage named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of record 1."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """One spelling per value: keys sorted, no spaces, UTF-8 as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def seal(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: SHA-256 over everything in it except ``hash``."""
    content = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(canonical_json(content)).hexdigest()


class Damage(StrEnum):
    """What is wrong with the first bad record of a log."""

    MISSING = "missing"
    """A sequence number was skipped: one or more records were removed."""
    OUT_OF_ORDER = "out_of_order"
    """A sequence number repeats or goes back: a record was duplicated, inserted or moved."""
    ALTERED = "altered"
    """The record's content no longer matches its seal."""
    BROKEN_LINK = "broken_link"
    """The record's seal is intact but it does not point at the record before it."""
    UNREADABLE = "unreadable"
    """The record is not a JSON object with the ledger's fields."""


@dataclass(frozen=True)
class Finding:
    """The first problem found: where, what kind, and in words."""

    position: int
    """1-based position of the record in the log as read."""
    expected_seq: int
    damage: Damage
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``verify``: how far the log is intact and the first problem, if any."""

    records: int
    intact_through: int
    """The last sequence number up to which every record checks out (0 for none)."""
    head_hash: str
    """The seal of record ``intact_through`` (the genesis hash when there is none)."""
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None

    def summary(self) -> str:
        if self.finding is None:
            return (
                f"audit trail intact: {self.records} records, seq 1-{self.intact_through}, "
                f"head {self.head_hash[:16]}"
            )
        f = self.finding
        return (
            f"audit trail damaged at record {f.position} (expected seq {f.expected_seq}): "
            f"{f.damage.value}: {f.detail}; intact through seq {self.intact_through}"
        )


def verify(records: Iterable[Mapping[str, Any] | None]) -> Verdict:
    """Walk a log from its first record; ``None`` stands for a record that could not be parsed."""
    expected = 1
    previous = GENESIS_HASH
    position = 0
    for position, record in enumerate(records, start=1):
        finding = _check(record, position, expected, previous)
        if finding is not None:
            return Verdict(position, expected - 1, previous, finding)
        assert record is not None
        previous = str(record["hash"])
        expected += 1
    return Verdict(position, expected - 1, previous, None)


def _check(
    record: Mapping[str, Any] | None, position: int, expected: int, previous: str
) -> Finding | None:
    def finding(damage: Damage, detail: str) -> Finding:
        return Finding(position, expected, damage, detail)

    if record is None or not isinstance(record, Mapping):
        return finding(Damage.UNREADABLE, "not a JSON object")
    seq = record.get("seq")
    stored = record.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(stored, str):
        return finding(Damage.UNREADABLE, "no integer seq or no hash")
    if seq > expected:
        missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}-{seq - 1}"
        return finding(Damage.MISSING, f"{missing} not found; the next record is seq {seq}")
    if seq < expected:
        return finding(Damage.OUT_OF_ORDER, f"seq {seq} appears again after seq {expected - 1}")
    try:
        actual = seal(record)
    except (TypeError, ValueError) as exc:
        return finding(Damage.UNREADABLE, f"cannot be sealed: {exc}")
    if actual != stored:
        return finding(
            Damage.ALTERED,
            f"seq {seq} ({record.get('kind', '?')}) content does not match its hash "
            f"{stored[:16]}; recomputed {actual[:16]}",
        )
    if record.get("prev_hash") != previous:
        return finding(
            Damage.BROKEN_LINK,
            f"seq {seq} points at {str(record.get('prev_hash'))[:16]}, "
            f"but seq {seq - 1} is {previous[:16]}",
        )
    return None
