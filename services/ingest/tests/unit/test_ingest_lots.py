"""Lot rules and the lot registry (the read model rebuilt from the topics)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from ingest.domain.commands import RecordLot
from ingest.domain.errors import InvalidLot, LotAlreadyWeighed, UnknownLot, UnknownStation
from ingest.domain.grading import SKELETON_PROFILE
from ingest.domain.lots import Applied, LotRegistry, LotStatus, Weighing, accept_weighing
from melon_contracts.reference import UnknownVariety

STATIONS = frozenset({"ws-1", "ws-2"})
T0 = datetime(2025, 7, 20, 6, 0, tzinfo=UTC)


def entry(**changes: Any) -> RecordLot:
    command = RecordLot(
        lot_id="L-001",
        station_id="ws-1",
        farmer_id="F-7",
        variety="xizhoumi",
        crates=40,
        net_kg="512.5",
        brix=(13.0, 13.4),
        operator_id="op-3",
    )
    return replace(command, **changes)


def weighing(lot_id: str = "L-001", **changes: Any) -> Weighing:
    return replace(accept_weighing(entry(lot_id=lot_id), STATIONS), **changes)


@pytest.mark.parametrize(
    ("net_kg", "net_g"),
    [
        pytest.param("512.5", 512_500, id="decimal-string"),
        pytest.param(Decimal("0.001"), 1, id="one-gram"),
        pytest.param(7, 7_000, id="whole-kg"),
        pytest.param("512.500", 512_500, id="trailing-zeros"),
    ],
)
def test_weight_is_recorded_in_whole_grams(net_kg: Decimal | str | int, net_g: int) -> None:
    # Given an operator's entry in kg, When it is accepted, Then the weight is integer grams
    assert accept_weighing(entry(net_kg=net_kg), STATIONS).net_g == net_g


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        pytest.param({"station_id": "ws-9"}, UnknownStation, "station 'ws-9'", id="station"),
        pytest.param({"variety": "hami"}, UnknownVariety, "unknown variety 'hami'", id="variety"),
        pytest.param({"crates": 0}, InvalidLot, "at least 1 crate", id="no-crates"),
        pytest.param({"net_kg": "0"}, InvalidLot, "more than 0 kg", id="zero-weight"),
        pytest.param({"net_kg": "-3"}, InvalidLot, "more than 0 kg", id="negative-weight"),
        pytest.param({"net_kg": "NaN"}, InvalidLot, "not a finite number", id="nan-weight"),
        pytest.param({"net_kg": "Infinity"}, InvalidLot, "not a finite", id="infinite-weight"),
        pytest.param({"net_kg": "12.3456"}, InvalidLot, "more precision", id="below-a-gram"),
        pytest.param({"net_kg": "heavy"}, InvalidLot, "not a number", id="not-a-number"),
        pytest.param({"brix": ()}, InvalidLot, "1 to 100 Brix readings", id="no-readings"),
        pytest.param({"brix": (12.0,) * 101}, InvalidLot, "not 101", id="too-many-readings"),
        pytest.param({"brix": (12.0, 35.1)}, InvalidLot, "35.1 is outside 0-35", id="over-35"),
        pytest.param({"brix": (-0.1,)}, InvalidLot, "-0.1 is outside", id="negative-brix"),
        pytest.param({"brix": (float("nan"),)}, InvalidLot, "nan is outside", id="nan-brix"),
        pytest.param({"brix": (float("inf"),)}, InvalidLot, "inf is outside", id="inf-brix"),
    ],
)
def test_entry_breaking_a_rule_is_refused_with_the_reason(
    changes: dict[str, Any], error: type[Exception], reason: str
) -> None:
    # Given an operator's entry that breaks one rule
    # When it is checked, Then it is refused with a reason naming the rule
    with pytest.raises(error, match=reason):
        accept_weighing(entry(**changes), STATIONS)


@pytest.mark.parametrize("brix", [(0.0,), (35.0,), (0.0, 35.0)], ids=["0", "35", "both-ends"])
def test_brix_at_the_ends_of_the_scale_is_accepted(brix: tuple[float, ...]) -> None:
    assert accept_weighing(entry(brix=brix), STATIONS).brix == brix


def test_repeated_identical_weighing_returns_the_recorded_lot() -> None:
    # Given a registry holding a lot
    registry = LotRegistry()
    registry.apply_weighed(weighing(), uuid4(), T0)
    # When the same content is checked again, Then the lot already recorded comes back
    existing = registry.check_new(weighing())
    assert existing is not None and existing.weighing == weighing()


def test_lot_id_weighed_again_with_other_content_is_refused() -> None:
    registry = LotRegistry()
    registry.apply_weighed(weighing(), uuid4(), T0)
    with pytest.raises(LotAlreadyWeighed, match="'L-001' was already weighed at ws-1"):
        registry.check_new(weighing(net_g=400_000))


def test_new_lot_id_is_new() -> None:
    assert LotRegistry().check_new(weighing()) is None


@pytest.mark.parametrize(
    ("second", "same_event", "outcome"),
    [
        pytest.param({}, True, Applied.DUPLICATE, id="redelivered-event"),
        pytest.param({}, False, Applied.DUPLICATE, id="same-content-new-event"),
        pytest.param({"crates": 41}, False, Applied.CONFLICT, id="other-content"),
    ],
)
def test_first_weighing_of_a_lot_stands(
    second: dict[str, Any], same_event: bool, outcome: Applied
) -> None:
    # Given a registry that applied a lot's first weighing
    registry = LotRegistry()
    first_event = uuid4()
    registry.apply_weighed(weighing(), first_event, T0)
    # When another weighing of the lot id arrives
    event_id = first_event if same_event else uuid4()
    applied = registry.apply_weighed(weighing(**second), event_id, T0 + timedelta(minutes=1))
    # Then it changes nothing, and says whether it merely repeated the first
    assert applied is outcome
    assert registry.get("L-001").event_id == first_event
    assert registry.get("L-001").weighing == weighing()
    assert len(registry) == 1


def test_grade_applies_to_a_weighed_lot_once() -> None:
    # Given a weighed lot
    registry = LotRegistry()
    registry.apply_weighed(weighing(), uuid4(), T0)
    assert registry.get("L-001").status is LotStatus.WEIGHED
    first = SKELETON_PROFILE.grade((13.0,))
    # When it is graded, and a second grade arrives later
    assert registry.apply_graded("L-001", first, T0) is Applied.ADDED
    later = SKELETON_PROFILE.grade((15.0,))
    assert registry.apply_graded("L-001", later, T0) is Applied.DUPLICATE
    # Then the first grade stands
    lot = registry.get("L-001")
    assert (lot.status, lot.grading, lot.graded_at) == (LotStatus.GRADED, first, T0)


def test_grade_read_before_its_weighing_waits_for_it() -> None:
    # Given a grade that arrives before its weighing (the two topics are read side by side)
    registry = LotRegistry()
    grading = SKELETON_PROFILE.grade((13.0,))
    assert registry.apply_graded("L-001", grading, T0) is Applied.PENDING
    assert registry.pending_grades == 1
    assert registry.find("L-001") is None
    # When the weighing arrives
    registry.apply_weighed(weighing(), uuid4(), T0 - timedelta(minutes=1))
    # Then the lot is graded at once
    assert registry.get("L-001").grading == grading
    assert registry.pending_grades == 0


def test_unknown_lot_is_reported() -> None:
    with pytest.raises(UnknownLot, match="no lot 'L-404'"):
        LotRegistry().get("L-404")


def test_latest_lists_newest_weighing_first_whatever_the_arrival_order() -> None:
    # Given lots applied out of time order, two with the same timestamp
    registry = LotRegistry()
    times = {"L-1": T0, "L-3": T0 + timedelta(hours=2), "L-2": T0 + timedelta(hours=1)}
    for lot_id, at in times.items():
        registry.apply_weighed(weighing(lot_id), UUID(int=len(registry) + 1), at)
    registry.apply_weighed(weighing("L-3b"), uuid4(), T0 + timedelta(hours=2))
    # When the newest are listed
    listed = [lot.lot_id for lot in registry.latest(3)]
    # Then the newest come first, later arrivals first among equal times, and limit applies
    assert listed == ["L-3b", "L-3", "L-2"]
