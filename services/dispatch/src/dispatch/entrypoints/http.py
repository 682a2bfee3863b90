"""The dispatch HTTP API: gate check-in, the yard's trucks and shipments, and assignments.

Routes are plain functions because publishing waits for the broker's acknowledgement; FastAPI runs
them in its thread pool, and the service's lock keeps them from stepping on each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi import status as codes
from fastapi.responses import JSONResponse

from dispatch.domain.errors import (
    ColdChainRequired,
    DispatchError,
    EmptyAssignment,
    InvalidCapacity,
    OverCapacity,
    ShipmentAlreadyAssigned,
    TruckAlreadyInYard,
    UnknownShipment,
    UnknownTruck,
)
from dispatch.domain.yard import ShipmentStatus
from dispatch.entrypoints.schemas import (
    AssignmentOut,
    AssignShipmentsBody,
    CheckInTruckBody,
    Health,
    ShipmentOut,
    TruckOut,
)
from dispatch.service import Assign, CheckIn, DispatchService, NotReady
from melon_contracts.transport import PublishFailed
from melon_contracts.web import Refusals, documented, install_error_handlers

_REFUSALS: Refusals = {
    UnknownTruck: (codes.HTTP_404_NOT_FOUND, "unknown_truck"),
    UnknownShipment: (codes.HTTP_404_NOT_FOUND, "unknown_shipment"),
    TruckAlreadyInYard: (codes.HTTP_409_CONFLICT, "truck_already_in_yard"),
    ShipmentAlreadyAssigned: (codes.HTTP_409_CONFLICT, "shipment_already_assigned"),
    OverCapacity: (codes.HTTP_409_CONFLICT, "over_capacity"),
    ColdChainRequired: (codes.HTTP_409_CONFLICT, "cold_chain_required"),
    InvalidCapacity: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_capacity"),
    EmptyAssignment: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "empty_assignment"),
    DispatchError: (codes.HTTP_409_CONFLICT, "dispatch_rule"),
    NotReady: (codes.HTTP_503_SERVICE_UNAVAILABLE, "not_ready"),
    PublishFailed: (codes.HTTP_503_SERVICE_UNAVAILABLE, "broker_unavailable"),
}

_REFUSED = documented(_REFUSALS)


def _service(request: Request) -> DispatchService:
    service: DispatchService = request.app.state.service
    return service


Service = Annotated[DispatchService, Depends(_service)]


def create_app(service: DispatchService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            # Stopping joins the reader thread; off the event loop so shutdown stays responsive.
            await asyncio.to_thread(service.stop)

    app = FastAPI(title="Melon Hall dispatch", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app, _REFUSALS)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz(service: Service) -> JSONResponse:
        health = service.health
        code = codes.HTTP_200_OK if health == "ok" else codes.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse(status_code=code, content={"status": health})

    @app.post("/trucks", status_code=codes.HTTP_201_CREATED, responses=_REFUSED)
    def check_in_truck(body: CheckInTruckBody, service: Service) -> TruckOut:
        load = service.check_in(
            CheckIn(
                plate=body.plate,
                driver=body.driver,
                phone=body.phone,
                capacity_kg=body.capacity_kg,
                refrigerated=body.refrigerated,
                checked_in_by=body.checked_in_by,
            )
        )
        return TruckOut.of(load)

    @app.get("/trucks")
    def list_trucks(service: Service) -> list[TruckOut]:
        return [TruckOut.of(load) for load in service.trucks()]

    @app.get("/shipments", responses=_REFUSED)
    def list_shipments(
        service: Service, status: Annotated[ShipmentStatus | None, Query()] = None
    ) -> list[ShipmentOut]:
        return [ShipmentOut.of(state) for state in service.shipments(status)]

    @app.post("/assignments", status_code=codes.HTTP_201_CREATED, responses=_REFUSED)
    def assign_shipments(body: AssignShipmentsBody, service: Service) -> AssignmentOut:
        assigned = service.assign(
            Assign(plate=body.plate, shipment_ids=body.shipment_ids, assigned_by=body.assigned_by)
        )
        return AssignmentOut(
            truck=TruckOut.of(assigned.truck),
            shipments=[ShipmentOut.of(state) for state in assigned.shipments],
        )

    return app
