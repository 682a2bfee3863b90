"""The audit trail: sealing, verifying a log with every kind of damage, appending through Kafka's
stand-in, never reusing a sequence number after a failed append, and fencing damage off with a
break record that keeps the chain verifiable past it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.domain import ledger as chain_rules
from ingest.domain.ledger import (
    BREAK_KIND,
    GENESIS_HASH,
    Chain,
    Damage,
    next_seq,
    seal,
    verify,
)
from ingest.ledger import Ledger, memory_source, not_a_record, sealed
from melon_contracts.codec import encode
from melon_contracts.events import DeadLettered, LedgerRecord
from melon_contracts.topics import INGEST_LEDGER, by_name
from melon_contracts.transport import InMemoryPublisher, PublishFailed


def chain(count: int) -> list[dict[str, Any]]:
    records = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        record = sealed(seq, prev, "crate_tare_set", "op-1", None, {"n": seq}, f"c-{seq}")
        records.append(json.loads(encode(record)))
        prev = record.hash
    return records


def test_a_sealed_record_verifies_after_a_json_round_trip() -> None:
    records = chain(3)
    verdict = verify(enumerate(records))
    assert verdict.ok and verdict.records == 3 and verdict.intact_through == 3
    assert verdict.head_hash == records[-1]["hash"] == seal(records[-1])
    assert "intact: 3 records" in verdict.summary()


def test_an_empty_log_is_intact() -> None:
    verdict = verify(enumerate([]))
    assert verdict.ok and verdict.intact_through == 0 and verdict.head_hash == GENESIS_HASH


def _altered_body(records: list[dict[str, Any]]) -> None:
    records[2]["body"]["n"] = 99


def _altered_actor(records: list[dict[str, Any]]) -> None:
    records[2]["actor"] = "someone-else"


def _removed(records: list[dict[str, Any]]) -> None:
    del records[2]


def _removed_two(records: list[dict[str, Any]]) -> None:
    del records[2:4]


def _duplicated(records: list[dict[str, Any]]) -> None:
    records.insert(3, dict(records[2]))


def _swapped(records: list[dict[str, Any]]) -> None:
    records[2], records[3] = records[3], records[2]


def _resealed_but_unlinked(records: list[dict[str, Any]]) -> None:
    # A forger rewrites record 3 and recomputes its hash: the link from record 4 breaks.
    records[2]["body"]["n"] = 99
    records[2]["hash"] = seal(records[2])


def _forged_link(records: list[dict[str, Any]]) -> None:
    records[2]["prev_hash"] = "f" * 64
    records[2]["hash"] = seal(records[2])


def _garbled(records: list[dict[str, Any] | None]) -> None:
    records[2] = None


def _no_seq(records: list[dict[str, Any]]) -> None:
    del records[2]["seq"]


@pytest.mark.parametrize(
    ("tamper", "position", "expected_seq", "damage"),
    [
        (_altered_body, 3, 3, Damage.ALTERED),
        (_altered_actor, 3, 3, Damage.ALTERED),
        (_removed, 3, 3, Damage.MISSING),
        (_removed_two, 3, 3, Damage.MISSING),
        (_duplicated, 4, 4, Damage.OUT_OF_ORDER),
        (_swapped, 3, 3, Damage.MISSING),
        (_resealed_but_unlinked, 4, 4, Damage.BROKEN_LINK),
        (_forged_link, 3, 3, Damage.BROKEN_LINK),
        (_garbled, 3, 3, Damage.UNREADABLE),
        (_no_seq, 3, 3, Damage.UNREADABLE),
    ],
)
def test_verify_names_the_first_damaged_record(
    tamper: Any, position: int, expected_seq: int, damage: Damage
) -> None:
    records: list[Any] = chain(6)
    tamper(records)
    verdict = verify(enumerate(records))
    assert not verdict.ok and verdict.finding is not None
    assert (verdict.finding.position, verdict.finding.expected_seq) == (position, expected_seq)
    assert verdict.finding.damage is damage
    assert verdict.intact_through == expected_seq - 1
    assert f"expected seq {expected_seq}" in verdict.summary()


def test_a_missing_range_is_named() -> None:
    records = chain(6)
    del records[1:4]
    finding = verify(enumerate(records)).finding
    assert finding is not None and "seq 2-4 not found" in finding.detail


class Log(InMemoryPublisher):
    """The in-memory publisher with the ledger topic readable back, like the broker."""

    def __init__(self) -> None:
        super().__init__("ingest")
        self.values: list[bytes] = []
        self.lose_ack_next = False

    def publish(self, spec: Any, key: str, message: Any) -> None:
        if self.unreachable:
            super().publish(spec, key, message)
        if spec.name == INGEST_LEDGER.name:
            self.values.append(encode(message))
            if self.lose_ack_next:
                # The write lands but the acknowledgement is lost.
                self.lose_ack_next = False
                raise PublishFailed("acknowledgement lost")
        super().publish(spec, key, message)

    def letters(self) -> list[DeadLettered]:
        return [m for m in self.on(by_name(INGEST_LEDGER.dlq)) if isinstance(m, DeadLettered)]

    def parsed(self) -> list[tuple[int, dict[str, Any] | None]]:
        return list(enumerate(parse(value) for value in self.values))


def ledger_on(log: Log, applied: list[LedgerRecord]) -> Ledger:
    return Ledger(log, memory_source(log.values), applied.append)


def test_appends_chain_and_a_restart_replays_them() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    first = ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    second = ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    assert (first.seq, second.seq) == (1, 2) and second.prev_hash == first.hash
    assert verify(enumerate(json.loads(value) for value in log.values)).ok

    replayed: list[LedgerRecord] = []
    restarted = ledger_on(log, replayed)
    assert restarted.catch_up() == 2
    assert [r.seq for r in replayed] == [1, 2] and restarted.head_hash == second.hash


def test_a_lost_acknowledgement_never_reuses_a_sequence_number() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.lose_ack_next = True
    with pytest.raises(PublishFailed):
        ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    third = ledger.append("crate_tare_set", "op-1", {"n": 3}, correlation_id="c")
    # The record whose acknowledgement was lost is in the log, so it was applied, and the next
    # append sealed onto it.
    assert [r.body["n"] for r in applied] == [1, 2, 3] and third.seq == 3
    assert verify(enumerate(json.loads(value) for value in log.values)).ok


def test_an_unreachable_broker_leaves_the_head_where_it_was() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.unreachable = True
    with pytest.raises(PublishFailed):
        ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    log.unreachable = False
    assert ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c").seq == 2
    assert [r.seq for r in applied] == [1, 2]


def parse(value: bytes | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value or b"")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def record(
    seq: int, prev: str, kind: str = "crate_tare_set", body: dict[str, Any] | None = None
) -> dict[str, Any]:
    sealed_record = sealed(seq, prev, kind, "op-1", None, body or {"n": seq}, f"c-{seq}")
    return json.loads(encode(sealed_record))


def weighing(seq: int, prev: str, ticket_no: int, station: str = "ws-1") -> dict[str, Any]:
    body = {"station_id": station, "ticket_no": ticket_no, "lot": {"lot_id": f"L-{seq}"}}
    return record(seq, prev, "lot_weighed", body)


def forged_from(genuine: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a genuine record with fields changed and its old seal: it fails its seal."""
    copy = json.loads(json.dumps(genuine))
    body = copy["body"]
    for name, value in changes.items():
        if name in copy:
            copy[name] = value
        else:
            body[name] = value
    return copy


def damaged_log() -> list[Any]:
    """Offsets 0-4: seq 1-3, then a weighing (ticket 1 of ws-1) and a print; offset 5 is not
    JSON; offset 6 a forged weighing claiming seq 6 and ticket 2 of ws-1."""
    log: list[Any] = chain(3)
    log.append(weighing(4, log[-1]["hash"], ticket_no=1))
    log.append(record(5, log[-1]["hash"], "ticket_printed"))
    log.append(None)
    log.append(forged_from(log[3], seq=6, prev_hash=log[4]["hash"], ticket_no=2, net_g=9))
    return log


def seal_break(walked: Chain, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The break record ``walked`` calls for, or one with another body, sealed onto its head."""
    if body is None:
        breach = walked.breach()
        assert breach is not None
        body = breach[1]
    seq = next_seq(walked.head_seq, BREAK_KIND, body)
    return record(seq, walked.head_hash, BREAK_KIND, body)


def walk(log: list[Any]) -> Chain:
    walked = Chain()
    for offset, one in enumerate(log):
        walked.step(offset, one)
    return walked


def test_damage_is_fenced_off_and_a_break_record_acknowledges_it_on_the_trail() -> None:
    log = damaged_log()
    walked = walk(log)
    # The damaged records are fenced off; the chain's head is the last good record
    assert [(f.offset, f.damage) for f in walked.unacknowledged] == [
        (5, Damage.UNREADABLE),
        (6, Damage.ALTERED),
    ]
    assert (walked.head_seq, walked.head_hash) == (5, log[4]["hash"])
    # The break points at the last good seal and voids the seq and ticket the forgery claims
    breach = walked.breach()
    assert breach is not None
    seq, body = breach
    assert seq == 7
    assert (body["last_good_seq"], body["last_good_hash"]) == (5, log[4]["hash"])
    assert [d["offset"] for d in body["damaged"]] == [5, 6]
    assert body["damaged"][1]["claimed_ticket"] == {"station_id": "ws-1", "ticket_no": 2}
    assert body["void_seqs"] == {"first": 6, "last": 6}
    assert body["void_tickets"] == [{"station_id": "ws-1", "first": 2, "last": 2}]

    # When the break and a next weighing (ticket 3) are on the trail
    log.append(seal_break(walked))
    log.append(weighing(8, log[-1]["hash"], ticket_no=3))
    verdict = verify(enumerate(log))
    # Then verify names both damaged records as acknowledged and checks the chain past them
    assert not verdict.ok and verdict.intact_through == 5
    assert [(f.offset, f.acknowledged_by) for f in verdict.findings] == [(5, 7), (6, 7)]
    assert (verdict.head_seq, verdict.head_hash) == (8, log[-1]["hash"])
    summary = verdict.summary()
    assert "offset 5 (record 6, expected seq 6)" in summary
    assert "checks out through seq 8" in summary
    assert summary.count("acknowledged by seq 7") == 2
    assert "the break at seq 7 voids seq 6, ws-1 ticket 2" in summary


def _names_a_good_record(body: dict[str, Any]) -> None:
    body["damaged"] = [{**body["damaged"][0], "offset": 2}]


def _names_nothing(body: dict[str, Any]) -> None:
    body["damaged"] = []


def _voids_more_seqs(body: dict[str, Any]) -> None:
    body["void_seqs"] = {"first": 6, "last": 50}


def _voids_no_ticket(body: dict[str, Any]) -> None:
    body["void_tickets"] = []


def _voids_another_ticket(body: dict[str, Any]) -> None:
    body["void_tickets"] = [{"station_id": "ws-2", "first": 1, "last": 1}]


def _points_elsewhere(body: dict[str, Any]) -> None:
    body["last_good_seq"] = 4


@pytest.mark.parametrize(
    "lie",
    [
        _names_a_good_record,
        _names_nothing,
        _voids_more_seqs,
        _voids_no_ticket,
        _voids_another_ticket,
        _points_elsewhere,
    ],
)
def test_a_break_record_that_does_not_say_what_the_damage_implies_is_itself_damage(
    lie: Any,
) -> None:
    log = damaged_log()
    walked = walk(log)
    breach = walked.breach()
    assert breach is not None
    body = json.loads(json.dumps(breach[1]))
    lie(body)
    log.append(seal_break(walked, body))
    verdict = verify(enumerate(log))
    assert verdict.findings[-1].damage is Damage.UNFOUNDED_BREAK
    assert verdict.findings[-1].offset == 7
    assert all(f.acknowledged_by is None for f in verdict.findings)
    assert verdict.head_seq == 5


def test_a_break_leaves_a_record_that_landed_after_its_writer_read_the_log_to_a_later_one() -> None:
    # Given a break sealed by a writer that read the log up to the record that is not JSON
    log = damaged_log()
    seen = walk(log[:6])
    # When the forged record landed after that read, just before the break
    log.append(seal_break(seen))
    # Then the break stands for what its writer saw, and the forged record awaits a later one
    verdict = verify(enumerate(log))
    assert [(f.offset, f.acknowledged_by) for f in verdict.findings] == [(5, 6), (6, None)]
    assert "offset 6 (record 7, expected seq 6): altered" in verdict.summary()
    assert "not acknowledged on the trail" in verdict.summary()


def test_every_number_a_fenced_record_claims_above_those_in_use_is_voided() -> None:
    log: list[Any] = chain(3)
    log.append(weighing(4, log[-1]["hash"], ticket_no=1))
    log.append(forged_from(log[3], seq=900, ticket_no=40))
    log.append(forged_from(log[3], seq=2, ticket_no=1))  # claims numbers long in use
    breach = walk(log).breach()
    assert breach is not None
    seq, body = breach
    assert seq == 901 and body["void_seqs"] == {"first": 5, "last": 900}
    assert body["void_tickets"] == [{"station_id": "ws-1", "first": 2, "last": 40}]


def test_records_after_a_removed_one_are_fenced_off_and_their_numbers_voided() -> None:
    log: list[Any] = [weighing(seq, GENESIS_HASH, seq) for seq in range(1, 2)]
    for seq in range(2, 7):
        log.append(weighing(seq, log[-1]["hash"], ticket_no=seq))
    del log[2]  # seq 3 (ticket 3) is gone
    walked = walk(log)
    assert [(f.offset, f.damage) for f in walked.unacknowledged] == [
        (2, Damage.MISSING),
        (3, Damage.MISSING),
        (4, Damage.MISSING),
    ]
    breach = walked.breach()
    assert breach is not None
    seq, body = breach
    # seq 3 is void too: a number below one a fenced record claims is never issued either
    assert seq == 7 and body["void_seqs"] == {"first": 3, "last": 6}
    assert body["void_tickets"] == [{"station_id": "ws-1", "first": 3, "last": 6}]


def test_verify_with_the_event_model_fences_a_sealed_record_the_model_refuses() -> None:
    log: list[Any] = chain(2)
    log.append(record(3, log[-1]["hash"], "crate_tare_set"))
    log[2]["actor"] = "not an id!"
    log[2]["hash"] = seal(log[2])
    assert verify(enumerate(log)).ok
    verdict = verify(enumerate(log), validate=not_a_record)
    assert verdict.finding is not None and verdict.finding.damage is Damage.UNREADABLE
    assert "not a ledger record: actor" in verdict.finding.detail


def test_a_restart_fences_off_damage_seals_a_break_and_appends_go_on() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    for n in range(3):
        ledger.append("crate_tare_set", "op-1", {"n": n}, correlation_id="c")
    log.values.append(b"\x00\x9f{not json")
    genuine = json.loads(log.values[2])
    log.values.append(json.dumps(forged_from(genuine, seq=4, n=99)).encode())

    # When ingest starts again on the damaged trail
    replayed: list[LedgerRecord] = []
    restarted = ledger_on(log, replayed)
    assert restarted.catch_up() == 3
    # Then the good records are applied, the damaged ones are not, and a break is sealed onto
    # the last good record, voiding the seq the forgery claims
    brk = json.loads(log.values[-1])
    assert (brk["kind"], brk["seq"], brk["prev_hash"]) == (BREAK_KIND, 5, genuine["hash"])
    assert [d["offset"] for d in brk["body"]["damaged"]] == [3, 4]
    assert [r.seq for r in replayed] == [1, 2, 3, 5]
    assert [(f.offset, f.acknowledged_by) for f in restarted.damage] == [(3, 5), (4, 5)]
    # And each damaged record is dead-lettered with its offset, reason and bytes
    letters = log.letters()
    assert [(x.offset, x.reason.split(":")[0]) for x in letters] == [
        (3, "unreadable"),
        (4, "altered"),
    ]
    assert letters[0].correlation_id == brk["correlation_id"] == "ingest.ledger:0:3"
    assert '"n": 99' in letters[1].payload
    # And appending goes on past the break
    assert restarted.append("crate_tare_set", "op-1", {"n": 5}, correlation_id="c").seq == 6
    assert verify(log.parsed()).head_seq == 6

    # When it starts once more, the trail already says all this: no second break, no letters
    again = ledger_on(log, [])
    again.catch_up()
    assert [parse(v)["kind"] for v in log.values[-2:]] == [BREAK_KIND, "crate_tare_set"]  # type: ignore[index]
    assert len(log.letters()) == 2
    assert [(f.offset, f.acknowledged_by) for f in again.damage] == [(3, 5), (4, 5)]
    assert again.head_seq == 6


def test_junk_that_lands_while_the_ledger_runs_is_fenced_off_at_the_next_start() -> None:
    log = Log()
    ledger = ledger_on(log, [])
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.values.append(b"junk")
    # The running ledger seals onto its own head, past the junk
    assert ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c").seq == 2
    restarted = ledger_on(log, [])
    assert restarted.catch_up() == 2
    brk = json.loads(log.values[-1])
    assert (brk["seq"], brk["body"]["void_seqs"], brk["body"]["void_tickets"]) == (3, None, [])
    verdict = verify(log.parsed())
    assert [(f.offset, f.acknowledged_by) for f in verdict.findings] == [(1, 3)]
    assert verdict.head_seq == 3


def test_a_break_whose_acknowledgement_was_lost_is_not_sealed_twice() -> None:
    log = Log()
    ledger = ledger_on(log, [])
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.values.append(b"junk")
    restarted = ledger_on(log, [])
    log.lose_ack_next = True
    with pytest.raises(PublishFailed):
        restarted.catch_up()
    # The break landed; the next append reads it back before sealing anything
    assert restarted.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c").seq == 3
    kinds = [parse(v)["kind"] for v in log.values if parse(v)]  # type: ignore[index]
    assert kinds == ["crate_tare_set", BREAK_KIND, "crate_tare_set"]
    assert len(log.letters()) == 1
    assert verify(log.parsed()).head_seq == 3


def test_damage_met_while_catching_up_after_a_lost_acknowledgement_is_acknowledged_first() -> None:
    log = Log()
    ledger = ledger_on(log, [])
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.lose_ack_next = True
    with pytest.raises(PublishFailed):
        ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    log.values.append(b"junk")
    third = ledger.append("crate_tare_set", "op-1", {"n": 3}, correlation_id="c")
    # seq 2 landed and was applied; the junk after it was acknowledged by seq 3 before seq 4
    assert third.seq == 4
    assert [f.acknowledged_by for f in ledger.damage] == [3]
    assert verify(log.parsed()).head_seq == 4


def test_much_damage_is_acknowledged_by_several_breaks_without_reusing_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chain_rules, "ACKNOWLEDGED_AT_ONCE", 2)
    log = Log()
    ledger = ledger_on(log, [])
    ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    genuine = json.loads(log.values[0])
    for seq in (2, 3, 4):
        log.values.append(json.dumps(forged_from(genuine, seq=seq, n=seq)).encode())
    restarted = ledger_on(log, [])
    restarted.catch_up()
    breaks = [parse(v) for v in log.values[4:]]
    assert [(b["seq"], len(b["body"]["damaged"])) for b in breaks if b] == [(5, 2), (6, 1)]
    assert [b["body"]["void_seqs"] for b in breaks if b] == [{"first": 2, "last": 4}, None]
    verdict = verify(log.parsed())
    assert [f.acknowledged_by for f in verdict.findings] == [5, 5, 6]
    assert verdict.head_seq == 6


def test_damage_whose_dead_letter_the_broker_refused_is_acknowledged_before_the_next_record() -> (
    None
):
    class RefusesLetters(Log):
        refuse = True

        def publish(self, spec: Any, key: str, message: Any) -> None:
            if spec.name == INGEST_LEDGER.dlq and self.refuse:
                raise PublishFailed("no acknowledgement within the timeout")
            super().publish(spec, key, message)

    log = RefusesLetters()
    ledger_on(log, []).append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    log.values.append(b"junk")
    restarted = ledger_on(log, [])
    with pytest.raises(PublishFailed):
        restarted.catch_up()
    log.refuse = False
    appended = restarted.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    assert appended.seq == 3 and [parse(v)["kind"] for v in log.values[2:]] == [  # type: ignore[index]
        BREAK_KIND,
        "crate_tare_set",
    ]
    assert [letter.offset for letter in log.letters()] == [1]
