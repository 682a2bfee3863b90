"""The audit trail: sealing, verifying a log with every kind of damage, appending through Kafka's
stand-in, and never reusing a sequence number after a failed append."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.domain.ledger import GENESIS_HASH, Damage, seal, verify
from ingest.ledger import Ledger, LedgerBroken, memory_source, sealed
from melon_contracts.codec import encode
from melon_contracts.events import LedgerRecord
from melon_contracts.topics import INGEST_LEDGER
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
    verdict = verify(records)
    assert verdict.ok and verdict.records == 3 and verdict.intact_through == 3
    assert verdict.head_hash == records[-1]["hash"] == seal(records[-1])
    assert "intact: 3 records" in verdict.summary()


def test_an_empty_log_is_intact() -> None:
    verdict = verify([])
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
    verdict = verify(records)
    assert not verdict.ok and verdict.finding is not None
    assert (verdict.finding.position, verdict.finding.expected_seq) == (position, expected_seq)
    assert verdict.finding.damage is damage
    assert verdict.intact_through == expected_seq - 1
    assert f"expected seq {expected_seq}" in verdict.summary()


def test_a_missing_range_is_named() -> None:
    records = chain(6)
    del records[1:4]
    finding = verify(records).finding
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


def ledger_on(log: Log, applied: list[LedgerRecord]) -> Ledger:
    return Ledger(log, memory_source(log.values), applied.append)


def test_appends_chain_and_a_restart_replays_them() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    first = ledger.append("crate_tare_set", "op-1", {"n": 1}, correlation_id="c")
    second = ledger.append("crate_tare_set", "op-1", {"n": 2}, correlation_id="c")
    assert (first.seq, second.seq) == (1, 2) and second.prev_hash == first.hash
    assert verify(json.loads(value) for value in log.values).ok

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
    assert verify(json.loads(value) for value in log.values).ok


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


def test_a_tampered_log_stops_the_replay() -> None:
    log, applied = Log(), []
    ledger = ledger_on(log, applied)
    for n in range(3):
        ledger.append("crate_tare_set", "op-1", {"n": n}, correlation_id="c")
    record = json.loads(log.values[1])
    record["body"]["n"] = 42
    log.values[1] = json.dumps(record).encode()
    with pytest.raises(LedgerBroken, match="seq 2"):
        ledger_on(log, []).catch_up()
