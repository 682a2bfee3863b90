"""The yard's events refuse records that could not be true, whoever writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from melon_contracts.events import (
    ShipmentAssigned,
    ShipmentLine,
    TruckCheckedIn,
    TruckStatusChanged,
)
from melon_contracts.reference import Grade
from melon_contracts.topics import DISPATCH_YARD

T0 = datetime(2026, 8, 12, 6, 0, tzinfo=UTC)


def line(n: int, weight_g: int = 500_000) -> ShipmentLine:
    return ShipmentLine(
        trade_id=f"ganmibao.extra:{n}",
        lot_id=f"MQ-{n:04d}",
        farmer_id="farmer-chen",
        variety="ganmibao",
        grade=Grade.EXTRA,
        crates=40,
        weight_g=weight_g,
        traded_at=T0,
    )


def check_in(**changes: Any) -> TruckCheckedIn:
    fields: dict[str, Any] = {
        "correlation_id": "甘H12345",
        "plate": "甘H12345",
        "driver": "王师傅",
        "capacity_g": 12_000_000,
        "refrigerated": True,
        "setpoint_tenths_c": 80,
        "checked_in_by": "gate-1",
    }
    return TruckCheckedIn(**(fields | changes))


def assigned(lines: tuple[ShipmentLine, ...], weight_g: int) -> ShipmentAssigned:
    return ShipmentAssigned(
        correlation_id="甘H12345",
        visit_id=uuid4(),
        plate="甘H12345",
        shipment_id="merchant-lanzhou-0a1b2c3d-C",
        merchant_id="merchant-lanzhou",
        destination="兰州",
        cold_chain=True,
        lines=lines,
        weight_g=weight_g,
        assigned_by="yard-1",
    )


@pytest.mark.parametrize(
    ("refrigerated", "setpoint", "valid"),
    [(True, 80, True), (False, None, True), (True, None, False), (False, 80, False)],
)
def test_only_a_reefer_states_a_set_point(
    refrigerated: bool, setpoint: int | None, valid: bool
) -> None:
    if valid:
        assert check_in(refrigerated=refrigerated, setpoint_tenths_c=setpoint).refrigerated is (
            refrigerated
        )
    else:
        with pytest.raises(ValidationError):
            check_in(refrigerated=refrigerated, setpoint_tenths_c=setpoint)


def test_an_assignment_weighs_what_its_lines_weigh() -> None:
    lines = (line(1), line(2, 300_000))
    assert assigned(lines, 800_000).weight_g == 800_000
    with pytest.raises(ValidationError, match="sum of the lines"):
        assigned(lines, 800_001)


def test_an_assignment_lists_a_trade_once() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        assigned((line(1), line(1)), 1_000_000)


@pytest.mark.parametrize(
    ("status", "bay", "valid"),
    [
        ("loading", 2, True),
        ("loaded", None, True),
        ("departed", None, True),
        ("loading", None, False),
        ("loaded", 2, False),
    ],
)
def test_a_bay_comes_with_loading_only(status: str, bay: int | None, valid: bool) -> None:
    def make() -> TruckStatusChanged:
        return TruckStatusChanged(
            correlation_id="甘H12345",
            visit_id=uuid4(),
            plate="甘H12345",
            status=status,  # type: ignore[arg-type]
            bay=bay,
            changed_by="yard-1",
        )

    if valid:
        assert make().status == status
    else:
        with pytest.raises(ValidationError):
            make()


def test_every_yard_event_round_trips_through_the_topic() -> None:
    events = [
        check_in(destinations=("兰州", "西安")),
        assigned((line(1),), 500_000),
        TruckStatusChanged(
            correlation_id="甘H12345",
            visit_id=uuid4(),
            plate="甘H12345",
            status="loading",
            bay=3,
            changed_by="yard-1",
        ),
    ]
    for event in events:
        raw = event.model_dump_json().encode()
        assert DISPATCH_YARD.adapter.validate_json(raw) == event
