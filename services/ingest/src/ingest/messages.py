"""Translation between domain objects and contract events, done only here at the edge."""

from __future__ import annotations

from pydantic import ValidationError

from ingest.domain.commands import GradeLot
from ingest.domain.errors import InvalidLot
from ingest.domain.grading import Grading
from ingest.domain.lots import Lot, Weighing
from melon_contracts.events import LotGraded, LotWeighed


def lot_weighed(weighing: Weighing) -> LotWeighed:
    """The event for a new weighing; the contract's own limits (e.g. 100 t) surface as 422s."""
    try:
        return LotWeighed(
            correlation_id=weighing.lot_id,
            lot_id=weighing.lot_id,
            station_id=weighing.station_id,
            farmer_id=weighing.farmer_id,
            variety=weighing.variety,
            crates=weighing.crates,
            net_g=weighing.net_g,
            brix=weighing.brix,
            operator_id=weighing.operator_id,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "lot"
        raise InvalidLot(f"{where}: {first['msg']}") from exc


def weighing_of(event: LotWeighed) -> Weighing:
    return Weighing(
        lot_id=event.lot_id,
        station_id=event.station_id,
        farmer_id=event.farmer_id,
        variety=event.variety,
        crates=event.crates,
        net_g=event.net_g,
        brix=tuple(event.brix),
        operator_id=event.operator_id,
    )


def grade_lot(event: LotWeighed) -> GradeLot:
    return GradeLot(
        weighing=weighing_of(event), event_id=event.event_id, weighed_at=event.occurred_at
    )


def lot_graded(lot: Lot, grading: Grading) -> LotGraded:
    return LotGraded(
        correlation_id=lot.lot_id,
        lot_id=lot.lot_id,
        farmer_id=lot.weighing.farmer_id,
        variety=lot.weighing.variety,
        crates=lot.weighing.crates,
        net_g=lot.weighing.net_g,
        grade=grading.grade,
        profile_id=grading.profile_id,
        profile_version=grading.profile_version,
        brix_mean=grading.brix_mean,
        brix_samples=grading.brix_samples,
        reason=grading.reason,
    )


def grading_of(event: LotGraded) -> Grading:
    return Grading(
        grade=event.grade,
        profile_id=event.profile_id,
        profile_version=event.profile_version,
        brix_mean=event.brix_mean,
        brix_samples=event.brix_samples,
        reason=event.reason,
    )
