"""The weigh stations' HTTP API: operators record lots; anyone reads lots and health.

Refusals use the hall's error format (``melon_contracts.web``) with the status and code the table
``_REFUSALS`` gives their class.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, cast

from fastapi import Depends, FastAPI, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ingest.domain.commands import RecordLot
from ingest.domain.errors import (
    IngestError,
    InvalidLot,
    LotAlreadyWeighed,
    UnknownLot,
    UnknownStation,
)
from ingest.domain.lots import Lot, LotStatus
from ingest.runtime import IngestService
from ingest.service import LotService
from melon_contracts.reference import VARIETIES, Grade, Identifier, UnknownVariety
from melon_contracts.transport import PublishFailed
from melon_contracts.units import g_to_kg
from melon_contracts.web import Refusals, documented, install_error_handlers

_REFUSALS: Refusals = {
    UnknownStation: (status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_station"),
    UnknownVariety: (status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_variety"),
    InvalidLot: (status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_lot"),
    LotAlreadyWeighed: (status.HTTP_409_CONFLICT, "lot_already_weighed"),
    UnknownLot: (status.HTTP_404_NOT_FOUND, "unknown_lot"),
    IngestError: (status.HTTP_400_BAD_REQUEST, "ingest_error"),
    PublishFailed: (status.HTTP_503_SERVICE_UNAVAILABLE, "broker_unavailable"),
}


class RecordLotBody(BaseModel):
    """An operator's entry at the weigh station, in kilograms and °Brix."""

    model_config = ConfigDict(extra="forbid")

    lot_id: Identifier
    station_id: Identifier
    farmer_id: Identifier
    variety: Identifier = Field(description="A code from the variety list, e.g. xizhoumi")
    crates: int = Field(strict=True)
    net_kg: Decimal = Field(description="Net weight in kg, to the gram at most, e.g. 512.5")
    brix: list[float] = Field(description="Refractometer readings of the sampled fruit")
    operator_id: Identifier

    def command(self) -> RecordLot:
        return RecordLot(
            lot_id=self.lot_id,
            station_id=self.station_id,
            farmer_id=self.farmer_id,
            variety=self.variety,
            crates=self.crates,
            net_kg=self.net_kg,
            brix=tuple(self.brix),
            operator_id=self.operator_id,
        )


class LotView(BaseModel):
    """A lot as people read it: weights in grams and as a kg string, the grade when it has one."""

    lot_id: str
    status: LotStatus
    station_id: str
    farmer_id: str
    variety: str
    variety_zh: str
    crates: int
    net_g: int
    net_kg: str
    brix: list[float]
    operator_id: str
    weighed_at: datetime
    grade: Grade | None = None
    grade_zh: str | None = None
    profile_id: str | None = None
    profile_version: int | None = None
    brix_mean: float | None = None
    reason: str | None = None
    graded_at: datetime | None = None

    @classmethod
    def of(cls, lot: Lot) -> LotView:
        weighing, grading = lot.weighing, lot.grading
        view = cls(
            lot_id=lot.lot_id,
            status=lot.status,
            station_id=weighing.station_id,
            farmer_id=weighing.farmer_id,
            variety=weighing.variety,
            variety_zh=VARIETIES.get(weighing.variety, ("", ""))[0],
            crates=weighing.crates,
            net_g=weighing.net_g,
            net_kg=f"{g_to_kg(weighing.net_g):f}",
            brix=list(weighing.brix),
            operator_id=weighing.operator_id,
            weighed_at=lot.weighed_at,
        )
        if grading is None:
            return view
        return view.model_copy(
            update={
                "grade": grading.grade,
                "grade_zh": grading.grade.zh,
                "profile_id": grading.profile_id,
                "profile_version": grading.profile_version,
                "brix_mean": grading.brix_mean,
                "reason": grading.reason,
                "graded_at": lot.graded_at,
            }
        )


class LotList(BaseModel):
    """Lots, newest weighing first."""

    lots: list[LotView]


def _service(request: Request) -> IngestService:
    return cast(IngestService, request.app.state.service)


def _lots(service: Annotated[IngestService, Depends(_service)]) -> LotService:
    return service.lots


ServiceDep = Annotated[IngestService, Depends(_service)]
LotsDep = Annotated[LotService, Depends(_lots)]
Limit = Annotated[int, Query(ge=1, le=1000, description="How many lots at most")]

_DOCUMENTED = documented(_REFUSALS)


def create_app(service: IngestService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            # Stopping joins reader threads; keep the event loop free meanwhile.
            await asyncio.to_thread(service.stop)

    app = FastAPI(title="Melon Hall ingest", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app, _REFUSALS)

    @app.post("/lots", status_code=status.HTTP_201_CREATED, responses=_DOCUMENTED)
    def record_lot(body: RecordLotBody, lots: LotsDep, response: Response) -> LotView:
        """Record a weighed lot; repeating the same entry returns the lot with 200."""
        recorded = lots.record(body.command())
        if not recorded.created:
            response.status_code = status.HTTP_200_OK
        return LotView.of(recorded.lot)

    @app.get("/lots/{lot_id}", responses=_DOCUMENTED)
    def get_lot(lot_id: str, lots: LotsDep) -> LotView:
        return LotView.of(lots.lot(lot_id))

    @app.get("/lots")
    def list_lots(lots: LotsDep, limit: Limit = 100) -> LotList:
        return LotList(lots=[LotView.of(lot) for lot in lots.lots(limit)])

    @app.get("/healthz")
    def healthz(service: ServiceDep) -> JSONResponse:
        """200 once every reader has caught up with its topics; 503 naming those that have not."""
        health = service.health()
        if health.ok:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": "unavailable", "not_ready": health.not_ready},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return app
