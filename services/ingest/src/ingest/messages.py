"""Translation between the weigh house's records and contract events, done only here at the edge."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from ingest.domain.grading import Grading
from ingest.domain.weighhouse import WeighedLot
from melon_contracts.events import LedgerRecord, LotGraded, LotWeighed, QualitySample


def lot_weighed(lot: WeighedLot, event_id: UUID, record: LedgerRecord | None) -> LotWeighed:
    """The event of a weighing, the same every time it is (re)published from the trail."""
    details = lot.details
    extra = {} if record is None else {"occurred_at": record.occurred_at}
    return LotWeighed(
        event_id=event_id,
        correlation_id=lot.lot_id,
        lot_id=lot.lot_id,
        station_id=lot.station_id,
        ticket_no=lot.ticket_no,
        ledger_seq=lot.seq,
        farmer_id=details.farmer_id,
        village_group=details.village_group,
        variety=details.variety,
        harvest_date=None
        if details.harvest_date is None
        else date.fromisoformat(details.harvest_date),
        crates=details.crates,
        mode="vehicle" if lot.mode == "vehicle" else "crates",
        crate_type=details.crate_type,
        plate=lot.plate,
        gross_g=lot.gross_g,
        tare_g=lot.tare_g,
        net_g=lot.net_g,
        division_g=lot.division_g,
        sample=QualitySample(
            brix=details.sample.brix,
            fruit_weights_g=details.sample.fruit_weights_g,
            defects=dict(details.sample.defects),
        ),
        operator_id=lot.operator_id,
        **extra,
    )


def lot_graded(lot: WeighedLot, grading: Grading, event_id: UUID) -> LotGraded:
    details = lot.current
    return LotGraded(
        event_id=event_id,
        correlation_id=lot.lot_id,
        lot_id=lot.lot_id,
        station_id=lot.station_id,
        ticket_no=lot.ticket_no,
        farmer_id=details.farmer_id,
        variety=details.variety,
        crates=details.crates,
        net_g=lot.net_g,
        grade=grading.grade,
        profile_id=grading.profile_id,
        profile_version=grading.profile_version,
        size_code=grading.size_code,
        brix_mean=grading.brix_mean,
        brix_samples=grading.brix_samples,
        fruit_weight_mean_g=grading.fruit_weight_mean_g,
        fruit_weight_min_g=grading.fruit_weight_min_g,
        fruit_weight_max_g=grading.fruit_weight_max_g,
        defect_percent=dict(grading.defect_percent),
        reason=grading.reason,
        reason_en=grading.reason_en,
    )


def grading_of(event: LotGraded) -> Grading:
    return Grading(
        grade=event.grade,
        profile_id=event.profile_id,
        profile_version=event.profile_version,
        size_code=event.size_code,
        brix_mean=event.brix_mean,
        brix_samples=event.brix_samples,
        fruit_weight_mean_g=event.fruit_weight_mean_g,
        fruit_weight_min_g=event.fruit_weight_min_g,
        fruit_weight_max_g=event.fruit_weight_max_g,
        defect_percent=dict(event.defect_percent),
        reason=event.reason,
        reason_en=event.reason_en,
    )
