"""The weigh house folds the audit trail; decisions return the record they would add."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.bootstrap import default_profile
from ingest.domain.errors import (
    InvalidLot,
    LotAlreadyWeighed,
    ParameterRejected,
    StationBusy,
    UnknownLot,
    UnknownTicket,
    WrongStationKind,
)
from ingest.domain.grading import Sample
from ingest.domain.scale import ScaleConfig
from ingest.domain.weighhouse import Kind, LotDetails, StationKind, WeighHouse

PLATFORM = ScaleConfig(division_g=200, max_g=1_000_000, min_load_g=4_000)
TRUCK = ScaleConfig(division_g=20_000, max_g=60_000_000, min_load_g=400_000)
SAMPLE = Sample(brix=(13.0, 13.2), fruit_weights_g=(2400, 2500))


class Trail:
    """A weigh house and the records it was built from, appended the way the service does."""

    def __init__(self) -> None:
        self.house = WeighHouse()
        self.records: list[tuple[int, str, str, dict[str, Any], str]] = []

    def add(self, kind: Kind, body: dict[str, Any], actor: str = "op-1") -> None:
        record = (len(self.records) + 1, kind.value, actor, body, "2026-08-12T08:00:00+00:00")
        self.records.append(record)
        self.house.apply(*record)


@pytest.fixture
def trail() -> Trail:
    trail = Trail()
    house = trail.house
    trail.add(Kind.SCALE_CONFIGURED, house.decide_scale("ws-1", StationKind.PLATFORM, PLATFORM))
    trail.add(Kind.SCALE_CONFIGURED, house.decide_scale("ts-1", StationKind.TRUCK, TRUCK))
    trail.add(Kind.CRATE_TARE_SET, house.decide_crate_tare("plastic-crate", 1_600))
    trail.add(Kind.PROFILE_ACTIVATED, house.decide_profile(default_profile()))
    return trail


def details(lot_id: str, **changes: Any) -> LotDetails:
    fields: dict[str, Any] = {
        "lot_id": lot_id,
        "farmer_id": "F-1",
        "variety": "xizhoumi",
        "crates": 10,
        "crate_type": "plastic-crate",
        "sample": SAMPLE,
        **changes,
    }
    return LotDetails(**fields)


def test_tickets_are_numbered_per_station_and_a_replay_gives_the_same_house(trail: Trail) -> None:
    house = trail.house
    for index in range(3):
        body = house.decide_crate_weighing("ws-1", details(f"L{index}"), 100_000)
        assert body["ticket_no"] == index + 1
        trail.add(Kind.LOT_WEIGHED, body)
    assert house.ticket("ws-1", 2).lot_id == "L1"

    replayed = WeighHouse()
    for record in trail.records:
        replayed.apply(*record)
    assert replayed.lots == house.lots and replayed.last_ticket == {"ws-1": 3}


def test_records_must_come_in_sequence(trail: Trail) -> None:
    with pytest.raises(ValueError, match="follows seq 4"):
        trail.house.apply(6, "crate_tare_set", "op", {"crate_type": "x", "tare_g": 1}, "")
    with pytest.raises(ValueError, match="unknown ledger record kind"):
        trail.house.apply(5, "lot_teleported", "op", {}, "")


def test_decisions_change_nothing_until_their_record_is_applied(trail: Trail) -> None:
    house = trail.house
    house.decide_crate_weighing("ws-1", details("L1"), 100_000)
    assert house.existing("L1") is None and house.last_ticket == {}


@pytest.mark.parametrize(
    ("decide", "error"),
    [
        (lambda h: h.decide_crate_weighing("ts-1", details("L9"), 100_000), WrongStationKind),
        (lambda h: h.decide_crate_weighing("ws-1", details("L9", crates=0), 100_000), InvalidLot),
        (lambda h: h.decide_crate_weighing("ws-1", details("L9", crate_type=None), 1), InvalidLot),
        (lambda h: h.decide_crate_weighing("ws-1", details("L0"), 100_000), LotAlreadyWeighed),
        (lambda h: h.decide_weigh_out("ts-1", "甘H00001", 6_000_000), UnknownLot),
        (lambda h: h.decide_correction("L0", {"net_g": 1}, "typo"), InvalidLot),
        (lambda h: h.decide_correction("L0", {"farmer_id": "F-2"}, " "), InvalidLot),
        (lambda h: h.decide_crate_tare("plastic-crate", 0), ParameterRejected),
        (lambda h: h.decide_print("ws-1", 2), UnknownTicket),
    ],
    ids=[
        "crates-on-truck-scale",
        "no-crates",
        "no-crate-type",
        "weighed-twice",
        "weigh-out-without-weigh-in",
        "weight-correction",
        "correction-without-reason",
        "zero-tare",
        "unknown-ticket",
    ],
)
def test_refusals(trail: Trail, decide: Any, error: type[Exception]) -> None:
    trail.add(Kind.LOT_WEIGHED, trail.house.decide_crate_weighing("ws-1", details("L0"), 90_000))
    with pytest.raises(error):
        decide(trail.house)


def test_an_open_weigh_in_holds_its_lot_and_its_plate(trail: Trail) -> None:
    house = trail.house
    trail.add(
        Kind.VEHICLE_WEIGHED_IN, house.decide_weigh_in("ts-1", details("T1"), "甘h1", 9_000_000)
    )
    with pytest.raises(StationBusy, match="already weighed in"):
        house.decide_weigh_in("ts-1", details("T2"), "甘H1", 9_000_000)
    with pytest.raises(StationBusy, match="on truck"):
        house.decide_weigh_in("ts-1", details("T1"), "甘H2", 9_000_000)
    body = house.decide_weigh_out("ts-1", "甘H1", 3_000_000)
    trail.add(Kind.LOT_WEIGHED, body)
    lot = house.lot("T1")
    assert (lot.gross_g, lot.tare_g, lot.net_g, lot.plate) == (
        9_000_000,
        3_000_000,
        6_000_000,
        "甘H1",
    )
    assert house.pending == {}


def test_a_correction_keeps_the_original_and_shows_the_current(trail: Trail) -> None:
    house = trail.house
    trail.add(Kind.LOT_WEIGHED, house.decide_crate_weighing("ws-1", details("L1"), 100_000))
    trail.add(Kind.LOT_CORRECTED, house.decide_correction("L1", {"farmer_id": "F-9"}, "card"))
    lot = house.lot("L1")
    assert lot.details.farmer_id == "F-1" and lot.current.farmer_id == "F-9"
    assert lot.corrections[0].seq == 6 and lot.corrections[0].reason == "card"


def test_a_changed_profile_needs_a_new_version(trail: Trail) -> None:
    profile = default_profile()
    changed = type(profile).from_dict({**profile.to_dict(), "description": "edited"})
    with pytest.raises(ParameterRejected, match="new version"):
        trail.house.decide_profile(changed)
    assert trail.house.decide_profile(profile)["previous"] == f"{profile.profile_id}@1"


def test_a_trail_break_voids_tickets_and_seqs_a_damaged_record_claims(trail: Trail) -> None:
    house = trail.house
    trail.add(Kind.LOT_WEIGHED, house.decide_crate_weighing("ws-1", details("L1"), 100_000))
    # Given a break record (seq 7) voiding seq 6 and tickets 2-3 of ws-1, claimed by damage
    body = {
        "last_good_seq": 5,
        "last_good_hash": "0" * 64,
        "damaged": [{"offset": 5, "damage": "altered"}],
        "void_seqs": {"first": 6, "last": 6},
        "void_tickets": [{"station_id": "ws-1", "first": 2, "last": 3}],
    }
    with pytest.raises(ValueError, match="follows seq 5"):
        house.apply(6, Kind.TRAIL_BREAK.value, "melon-ingest", body, "2026-08-12T09:00:00+00:00")
    house.apply(7, Kind.TRAIL_BREAK.value, "melon-ingest", body, "2026-08-12T09:00:00+00:00")
    # Then the station's next ticket comes after the voided ones, which are never issued
    assert house.decide_crate_weighing("ws-1", details("L2"), 100_000)["ticket_no"] == 4
    with pytest.raises(UnknownTicket, match=r"ticket 3 of station ws-1 is void.*seq 7"):
        house.ticket("ws-1", 3)
    with pytest.raises(UnknownTicket, match="its tickets run 1-3"):
        house.ticket("ws-1", 4)
    assert house.ticket("ws-1", 1).lot_id == "L1"
