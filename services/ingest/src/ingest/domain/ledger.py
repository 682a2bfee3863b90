"""The audit trail's hash chain: how a record is sealed, how a log is walked, how damage is fenced.

Each record is sealed with SHA-256 over the canonical JSON of every field but ``hash`` itself, and
that includes ``prev_hash``, the seal of the record before it. Altering any field of any record
changes its seal; removing, inserting or reordering a record breaks the sequence numbers or the
link to the previous seal.

Damage does not end the chain. A record that is unreadable, altered or out of line is *fenced
off*: it is not part of the chain, which goes on from the last good record, and the records after
it must chain onto that one. The trail's writer acknowledges fenced records with a sealed break
record (kind ``trail_break``), which

- names each fenced record by its offset, with what is wrong with it;
- points at the last good record: its ``prev_hash`` is that record's seal, like any record's,
  and its body repeats the seal and the sequence number;
- voids the numbers a fenced record might have held. A fenced record may have been a genuine
  record that was damaged, and a ticket it issued may be in a farmer's hand, so every sequence
  number and ticket number it claims above those in use is never issued again, nor are the
  numbers below it. The break's own seq comes after the voided ones, a station's next ticket
  after its voided ones. Every number stays accounted for: used once, or void on the trail with
  the reason. (Numbers cost nothing; a forger who claims a huge one makes the trail skip ahead,
  in plain sight, but cannot make it issue a number twice.)

``Chain`` walks a log and decides all this. The ledger folds the trail through it on start and
``verify`` checks a log with it: a break record counts only if it says exactly what the damage
before it implies, so a break cannot hide a record or void numbers at will.

Records are handled as plain JSON mappings here, so a log that was tampered with into something
the event model would refuse to load can still be walked and the damage named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeGuard

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of record 1."""

BREAK_KIND = "trail_break"
"""The kind of the record that acknowledges fenced records and voids the numbers they claim."""

TICKETED_KIND = "lot_weighed"
"""The kind of record that issues a ticket: its body names ``station_id`` and ``ticket_no``."""

ACKNOWLEDGED_AT_ONCE = 500
"""At most this many fenced records are named by one break record; more take more breaks."""

SHOWN = 20
"""``Verdict.summary`` lists this many damaged records one by one, then counts the rest."""

Validate = Callable[[Mapping[str, Any]], str | None]
"""What is wrong with a record's shape beyond the chain (the event model), or None."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """One spelling per value: keys sorted, no spaces, UTF-8 as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def seal(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: SHA-256 over everything in it except ``hash``."""
    content = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def next_seq(head_seq: int, kind: object, body: object) -> int:
    """The seq a record after ``head_seq`` must carry: the next one, or for a break record that
    voids sequence numbers, the one after those."""
    if kind == BREAK_KIND and isinstance(body, Mapping):
        void = body.get("void_seqs")
        if (
            isinstance(void, Mapping)
            and void.get("first") == head_seq + 1
            and _is_int(void.get("first"))
            and _is_int(void.get("last"))
            and void["last"] > head_seq
        ):
            return int(void["last"]) + 1
    return head_seq + 1


class Damage(StrEnum):
    """What is wrong with a record that is fenced off."""

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
    UNFOUNDED_BREAK = "unfounded_break"
    """A break record that does not say what the damage before it implies."""


@dataclass(frozen=True)
class Claim:
    """The numbers a fenced record names, unverified: those it held if it was genuine."""

    seq: int | None = None
    ticket: tuple[str, int] | None = None
    """(station, ticket number) of a weighing."""

    @classmethod
    def of(cls, record: object) -> Claim:
        if not isinstance(record, Mapping):
            return cls()
        seq = record.get("seq")
        return cls(seq if _is_int(seq) else None, _ticket(record))


def _ticket(record: Mapping[str, Any]) -> tuple[str, int] | None:
    body = record.get("body")
    if record.get("kind") != TICKETED_KIND or not isinstance(body, Mapping):
        return None
    station, number = body.get("station_id"), body.get("ticket_no")
    if isinstance(station, str) and _is_int(number):
        return station, int(number)
    return None


@dataclass(frozen=True)
class Finding:
    """A fenced record: where, what kind of damage, in words, and whether the trail says so."""

    position: int
    """1-based position of the record in the log as read."""
    offset: int
    """Where the record is: its offset on the topic (the line from 0 in an exported file)."""
    expected_seq: int
    damage: Damage
    detail: str
    claim: Claim = Claim()
    acknowledged_by: int | None = None
    """The seq of the break record that names this one, once the trail does."""

    def describe(self) -> str:
        where = f"offset {self.offset} (record {self.position}, expected seq {self.expected_seq})"
        told = (
            f"acknowledged by seq {self.acknowledged_by}"
            if self.acknowledged_by is not None
            else "not acknowledged on the trail"
        )
        return f"{where}: {self.damage.value}: {self.detail}; {told}"

    def entry(self) -> dict[str, Any]:
        """How a break record names it."""
        ticket = self.claim.ticket
        return {
            "offset": self.offset,
            "damage": self.damage.value,
            "detail": self.detail,
            "claimed_seq": self.claim.seq,
            "claimed_ticket": None
            if ticket is None
            else {"station_id": ticket[0], "ticket_no": ticket[1]},
        }


@dataclass(frozen=True)
class Voided:
    """The numbers one break record voided."""

    seq: int
    """The break record's own seq."""
    seqs: tuple[int, int] | None
    tickets: tuple[tuple[str, int, int], ...]
    """(station, first, last) per station."""

    def describe(self) -> str:
        parts = []
        if self.seqs is not None:
            first, last = self.seqs
            parts.append(f"seq {first}" if first == last else f"seq {first}-{last}")
        for station, first, last in self.tickets:
            numbers = f"{first}" if first == last else f"{first}-{last}"
            parts.append(f"{station} ticket {numbers}")
        return f"the break at seq {self.seq} voids {', '.join(parts) if parts else 'nothing'}"


class Chain:
    """A log walked record by record: its head, the tickets issued, what was fenced off.

    ``examine`` decides whether a record extends the chain and changes nothing; ``extend`` and
    ``fence`` take the decision (``step`` does both). ``breach`` gives the break record that
    acknowledges what is fenced and not yet acknowledged.
    """

    def __init__(self, validate: Validate | None = None) -> None:
        self._validate = validate
        self.records = 0
        self.head_seq = 0
        self.head_hash = GENESIS_HASH
        self.last_ticket: dict[str, int] = {}
        self._findings: list[Finding] = []
        self._pending: dict[int, int] = {}
        """Offset -> place in ``_findings`` of each fenced record not yet acknowledged."""
        self.breaks: tuple[Voided, ...] = ()
        self.intact_through: int | None = None
        """The head when the first damage was met; None while there is none."""

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every fenced record, in log order (a copy: other threads may read it any time)."""
        return tuple(self._findings)

    @property
    def unacknowledged(self) -> list[Finding]:
        return [self._findings[place] for place in self._pending.values()]

    def step(self, offset: int, record: Mapping[str, Any] | None) -> Finding | None:
        finding = self.examine(offset, record)
        if finding is None:
            assert record is not None
            self.extend(record)
        else:
            self.fence(finding)
        return finding

    def examine(self, offset: int, record: Mapping[str, Any] | None) -> Finding | None:
        """None if ``record`` extends the chain, else what is wrong with it."""
        if record is None or not isinstance(record, Mapping):
            return self.finding(offset, record, Damage.UNREADABLE, "not a JSON object")
        seq = record.get("seq")
        stored = record.get("hash")
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(stored, str):
            return self.finding(offset, record, Damage.UNREADABLE, "no integer seq or no hash")
        expected = self._expected(record)
        if seq > expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}-{seq - 1}"
            return self.finding(
                offset, record, Damage.MISSING, f"{missing} not found; the next record is seq {seq}"
            )
        if seq < expected:
            return self.finding(
                offset,
                record,
                Damage.OUT_OF_ORDER,
                f"seq {seq} appears again after seq {expected - 1}",
            )
        try:
            actual = seal(record)
        except (TypeError, ValueError) as exc:
            return self.finding(offset, record, Damage.UNREADABLE, f"cannot be sealed: {exc}")
        if actual != stored:
            return self.finding(
                offset,
                record,
                Damage.ALTERED,
                f"seq {seq} ({record.get('kind', '?')}) content does not match its hash "
                f"{stored[:16]}; recomputed {actual[:16]}",
            )
        if record.get("prev_hash") != self.head_hash:
            return self.finding(
                offset,
                record,
                Damage.BROKEN_LINK,
                f"seq {seq} points at {str(record.get('prev_hash'))[:16]}, "
                f"but the chain's head, seq {self.head_seq}, is {self.head_hash[:16]}",
            )
        if record.get("kind") == BREAK_KIND:
            problem = self._unfounded(record.get("body"))
            if problem is not None:
                return self.finding(offset, record, Damage.UNFOUNDED_BREAK, problem)
        if self._validate is not None:
            problem = self._validate(record)
            if problem is not None:
                return self.finding(
                    offset, record, Damage.UNREADABLE, f"not a ledger record: {problem}"
                )
        return None

    def finding(self, offset: int, record: object, damage: Damage, detail: str) -> Finding:
        """A finding about the record ``examine`` would look at next."""
        expected = self._expected(record) if isinstance(record, Mapping) else self.head_seq + 1
        return Finding(self.records + 1, offset, expected, damage, detail, Claim.of(record))

    def _expected(self, record: Mapping[str, Any]) -> int:
        return next_seq(self.head_seq, record.get("kind"), record.get("body"))

    def extend(self, record: Mapping[str, Any]) -> None:
        """Take a record ``examine`` passed (or this chain's writer sealed) as the head."""
        self.records += 1
        ticket = _ticket(record)
        if ticket is not None:
            self.last_ticket[ticket[0]] = ticket[1]
        if record.get("kind") == BREAK_KIND:
            self._acknowledge(int(record["seq"]), record["body"])
        self.head_seq, self.head_hash = int(record["seq"]), str(record["hash"])

    def fence(self, finding: Finding) -> None:
        self.records += 1
        if self.intact_through is None:
            self.intact_through = self.head_seq
        self._pending[finding.offset] = len(self._findings)
        self._findings.append(finding)

    def _acknowledge(self, seq: int, body: Mapping[str, Any]) -> None:
        for entry in body["damaged"]:
            place = self._pending.pop(entry["offset"], None)
            if place is not None:
                self._findings[place] = replace(self._findings[place], acknowledged_by=seq)
        tickets = []
        for void in body.get("void_tickets") or ():
            station, last = void["station_id"], int(void["last"])
            self.last_ticket[station] = max(self.last_ticket.get(station, 0), last)
            tickets.append((station, int(void["first"]), last))
        seqs = body.get("void_seqs")
        self.breaks = (
            *self.breaks,
            Voided(
                seq,
                None if seqs is None else (int(seqs["first"]), int(seqs["last"])),
                tuple(tickets),
            ),
        )

    def breach(self) -> tuple[int, dict[str, Any]] | None:
        """The seq and body of the break record that acknowledges fenced records, or None."""
        pending = self.unacknowledged
        if not pending:
            return None
        body = self._break_body(pending[:ACKNOWLEDGED_AT_ONCE], pending)
        return next_seq(self.head_seq, BREAK_KIND, body), body

    def _break_body(self, named: Sequence[Finding], pending: Sequence[Finding]) -> dict[str, Any]:
        """What a break naming ``named`` must say, with ``pending`` fenced and unacknowledged.

        Counting every pending record, not only the named, means a later break (for records
        beyond this one's share) never takes a number one of them claims.
        """
        *_, (void_seqs, void_tickets) = self._voided(pending)
        return {
            "last_good_seq": self.head_seq,
            "last_good_hash": self.head_hash,
            "damaged": [f.entry() for f in named],
            "void_seqs": void_seqs,
            "void_tickets": void_tickets,
        }

    def _voided(
        self, pending: Sequence[Finding]
    ) -> Iterator[tuple[dict[str, int] | None, list[dict[str, Any]]]]:
        """The numbers to void for ``pending[:1]``, ``pending[:2]`` ... in turn: every seq and
        ticket number a record claims above those in use, and the numbers below it, so every
        number stays accounted for."""
        top = self.head_seq
        tickets: dict[str, int] = {}
        for f in pending:
            if f.claim.seq is not None:
                top = max(top, f.claim.seq)
            if f.claim.ticket is not None:
                station, number = f.claim.ticket
                if number > max(self.last_ticket.get(station, 0), tickets.get(station, 0)):
                    tickets[station] = number
            yield (
                {"first": self.head_seq + 1, "last": top} if top > self.head_seq else None,
                [
                    {
                        "station_id": station,
                        "first": self.last_ticket.get(station, 0) + 1,
                        "last": n,
                    }
                    for station, n in sorted(tickets.items())
                ],
            )

    def _unfounded(self, body: object) -> str | None:
        """Why a break record's body is not what the damage before it implies, or None.

        It must name fenced records not yet acknowledged, point at the head, and void what the
        fenced records up to some point at or past the last it names claim: its writer saw the
        log up to some point, and a record landing after that, before the break, is left to a
        later break.
        """
        if not isinstance(body, Mapping) or not isinstance(body.get("damaged"), list):
            return "it names no damaged records"
        entries = body["damaged"]
        offsets = [e.get("offset") if isinstance(e, Mapping) else None for e in entries]
        pending = self.unacknowledged
        place = {f.offset: index for index, f in enumerate(pending)}
        strays = [o for o in offsets if not _is_int(o) or o not in place]
        if not offsets or strays or len(set(offsets)) != len(offsets):
            return (
                f"it names offsets {offsets}, but the fenced records awaiting acknowledgement "
                f"are at {sorted(place)}"
            )
        for name, value in (("last_good_seq", self.head_seq), ("last_good_hash", self.head_hash)):
            if body.get(name) != value:
                return f"its {name} is {body.get(name)!r}, not the chain's head {value!r}"
        needed = max(place[o] for o in offsets if _is_int(o)) + 1
        claimed = (body.get("void_seqs"), body.get("void_tickets"))
        implied = list(self._voided(pending))
        if claimed in implied[needed - 1 :]:
            return None
        return (
            f"it voids seqs {claimed[0]!r} and tickets {claimed[1]!r}; the damage before it "
            f"implies {implied[-1][0]!r} and {implied[-1][1]!r}"
        )

    def verdict(self) -> Verdict:
        return Verdict(
            records=self.records,
            intact_through=self.head_seq if self.intact_through is None else self.intact_through,
            head_seq=self.head_seq,
            head_hash=self.head_hash,
            findings=self.findings,
            breaks=self.breaks,
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``verify``: how far the log is intact, the chain past any damage, and every
    fenced record."""

    records: int
    intact_through: int
    """The last sequence number up to which every record checks out (0 for none)."""
    head_seq: int
    """The chain's head at the end of the log, past any fenced records."""
    head_hash: str
    """The seal of record ``head_seq`` (the genesis hash when there is none)."""
    findings: tuple[Finding, ...] = ()
    breaks: tuple[Voided, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def finding(self) -> Finding | None:
        """The first damaged record, if any."""
        return self.findings[0] if self.findings else None

    def summary(self) -> str:
        if self.finding is None:
            return (
                f"audit trail intact: {self.records} records, seq 1-{self.head_seq}, "
                f"head {self.head_hash[:16]}"
            )
        f = self.finding
        acknowledged = sum(1 for one in self.findings if one.acknowledged_by is not None)
        lines = [
            f"audit trail damaged at record {f.position} (offset {f.offset}, expected seq "
            f"{f.expected_seq}): {f.damage.value}: {f.detail}; intact through seq "
            f"{self.intact_through}",
            f"{len(self.findings)} damaged record(s) fenced off, {acknowledged} acknowledged on "
            f"the trail; past the damage the chain checks out through seq {self.head_seq}, "
            f"head {self.head_hash[:16]}",
            *(f"  {one.describe()}" for one in self.findings[:SHOWN]),
        ]
        if len(self.findings) > SHOWN:
            lines.append(f"  ... and {len(self.findings) - SHOWN} more damaged record(s)")
        lines.extend(f"  {voided.describe()}" for voided in self.breaks)
        return "\n".join(lines)


def verify(
    records: Iterable[tuple[int, Mapping[str, Any] | None]], validate: Validate | None = None
) -> Verdict:
    """Walk a log from its first record: (offset, record), ``None`` for one that did not parse."""
    chain = Chain(validate)
    for offset, record in records:
        chain.step(offset, record)
    return chain.verdict()
