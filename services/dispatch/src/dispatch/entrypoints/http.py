"""The dispatch HTTP API: the gate, the yard, assignments, suggested loads and the yard stream.

Decision routes are plain functions: each waits for the broker's acknowledgement and for the
yard's log to be read back, so FastAPI runs them in its thread pool. ``GET /yard/stream`` sends
the whole yard as a server-sent event on connect and again after every change.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import status as codes
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatch.domain.errors import (
    BayOccupied,
    ColdChainRequired,
    DestinationNotServed,
    DispatchError,
    EmptyAssignment,
    InvalidCapacity,
    InvalidTransition,
    NothingToLoad,
    OverCapacity,
    SetpointOutOfRange,
    SetpointRequired,
    ShipmentAlreadyAssigned,
    TruckAlreadyInYard,
    TruckAlreadyLoaded,
    TruckDeparted,
    UnknownAssignment,
    UnknownBay,
    UnknownShipment,
    UnknownSuggestion,
    UnknownTrade,
    UnknownTruck,
)
from dispatch.domain.loads import DuplicateId
from dispatch.domain.yard import TruckStatus, Yard, normalize_plate
from dispatch.entrypoints.pages import install_pages
from dispatch.entrypoints.schemas import (
    AcceptBody,
    AcceptOut,
    AssignBody,
    AssignmentOut,
    BayBody,
    ByBody,
    CheckInTruckBody,
    Health,
    ShipmentOut,
    SuggestionOut,
    TakeBackBody,
    TruckOut,
    YardOut,
)
from dispatch.metrics import DispatchMetrics
from dispatch.service import (
    AssignRequest,
    CheckInRequest,
    DecisionUnconfirmed,
    DispatchService,
    NotReady,
)
from melon_contracts.health import health
from melon_contracts.transport import PublishFailed
from melon_contracts.web import Refusals, documented, install_error_handlers

_REFUSALS: Refusals = {
    UnknownTruck: (codes.HTTP_404_NOT_FOUND, "unknown_truck"),
    UnknownShipment: (codes.HTTP_404_NOT_FOUND, "unknown_shipment"),
    UnknownTrade: (codes.HTTP_404_NOT_FOUND, "unknown_trade"),
    UnknownAssignment: (codes.HTTP_404_NOT_FOUND, "unknown_assignment"),
    UnknownSuggestion: (codes.HTTP_409_CONFLICT, "suggestion_stale"),
    TruckAlreadyInYard: (codes.HTTP_409_CONFLICT, "truck_already_in_yard"),
    ShipmentAlreadyAssigned: (codes.HTTP_409_CONFLICT, "shipment_already_assigned"),
    OverCapacity: (codes.HTTP_409_CONFLICT, "over_capacity"),
    ColdChainRequired: (codes.HTTP_409_CONFLICT, "cold_chain_required"),
    SetpointOutOfRange: (codes.HTTP_409_CONFLICT, "setpoint_out_of_range"),
    DestinationNotServed: (codes.HTTP_409_CONFLICT, "destination_not_served"),
    TruckDeparted: (codes.HTTP_409_CONFLICT, "truck_departed"),
    TruckAlreadyLoaded: (codes.HTTP_409_CONFLICT, "truck_loaded"),
    InvalidTransition: (codes.HTTP_409_CONFLICT, "invalid_transition"),
    NothingToLoad: (codes.HTTP_409_CONFLICT, "nothing_to_load"),
    BayOccupied: (codes.HTTP_409_CONFLICT, "bay_occupied"),
    UnknownBay: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_bay"),
    InvalidCapacity: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_capacity"),
    SetpointRequired: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "setpoint_required"),
    EmptyAssignment: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "empty_assignment"),
    DuplicateId: (codes.HTTP_422_UNPROCESSABLE_CONTENT, "duplicate_id"),
    DispatchError: (codes.HTTP_409_CONFLICT, "dispatch_rule"),
    NotReady: (codes.HTTP_503_SERVICE_UNAVAILABLE, "not_ready"),
    DecisionUnconfirmed: (codes.HTTP_503_SERVICE_UNAVAILABLE, "decision_unconfirmed"),
    PublishFailed: (codes.HTTP_503_SERVICE_UNAVAILABLE, "broker_unavailable"),
}

_REFUSED = documented(_REFUSALS)

HEARTBEAT_S = 15.0
"""A comment this often keeps proxies and the yard office's Wi-Fi from closing a quiet stream."""

RETRY_MS = 2_000

DEPARTED_SHOWN = 50
"""The yard snapshot lists at most this many departed trucks, the latest first."""


def _service(request: Request) -> DispatchService:
    service: DispatchService = request.app.state.service
    return service


Service = Annotated[DispatchService, Depends(_service)]


def yard_snapshot(service: DispatchService) -> YardOut:
    now = service.now()
    suggestion = service.latest_suggestion()
    return service.read(lambda yard: YardOut.of(yard, now, suggestion, DEPARTED_SHOWN))


def create_app(service: DispatchService, registry: CollectorRegistry | None = None) -> FastAPI:
    metrics = DispatchMetrics(service, registry or CollectorRegistry())

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
    app.state.metrics = metrics
    install_error_handlers(app, _REFUSALS, metrics.refused)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz(service: Service) -> JSONResponse:
        """200 ``ok``; 503 ``starting`` while the yard is rebuilt, ``degraded`` while the broker
        does not answer (the yard can be read, nothing can be decided)."""
        yard = service.health
        waiting = {} if yard == "ok" else {"yard": yard}
        code, body = health(waiting, service.degraded())
        return JSONResponse(status_code=code, content=body)

    @app.post("/trucks", status_code=codes.HTTP_201_CREATED, responses=_REFUSED)
    def check_in_truck(body: CheckInTruckBody, service: Service) -> TruckOut:
        if body.refrigerated and body.setpoint_c is None:
            raise SetpointRequired
        visit = service.check_in(
            CheckInRequest(
                plate=body.plate,
                driver=body.driver,
                phone=body.phone,
                capacity_kg=body.capacity_kg,
                refrigerated=body.refrigerated,
                setpoint_c=body.setpoint_c if body.refrigerated else None,
                destinations=tuple(body.destinations),
                by=body.checked_in_by,
            )
        )
        return TruckOut.of(visit, service.now())

    @app.get("/trucks")
    def list_trucks(service: Service, departed: Annotated[bool, Query()] = False) -> list[TruckOut]:
        now = service.now()
        return service.read(
            lambda yard: [TruckOut.of(v, now) for v in yard.visits(include_departed=departed)]
        )

    @app.get("/trucks/{plate}", responses=_REFUSED)
    def get_truck(plate: str, service: Service) -> TruckOut:
        now = service.now()
        return service.read(lambda yard: TruckOut.of(yard.latest_visit(plate), now))

    @app.post("/trucks/{plate}/bay", responses=_REFUSED)
    def to_bay(plate: str, body: BayBody, service: Service) -> TruckOut:
        visit = service.move(plate, TruckStatus.LOADING, body.by, body.bay)
        return TruckOut.of(visit, service.now())

    @app.post("/trucks/{plate}/loaded", responses=_REFUSED)
    def loaded(plate: str, body: ByBody, service: Service) -> TruckOut:
        visit = service.move(plate, TruckStatus.LOADED, body.by)
        return TruckOut.of(visit, service.now())

    @app.post("/trucks/{plate}/departure", responses=_REFUSED)
    def depart(plate: str, body: ByBody, service: Service) -> TruckOut:
        visit = service.move(plate, TruckStatus.DEPARTED, body.by)
        return TruckOut.of(visit, service.now())

    @app.get("/shipments")
    def list_shipments(service: Service) -> list[ShipmentOut]:
        """Shipments waiting for a truck, longest waiting first."""
        now = service.now()
        return service.read(lambda yard: [ShipmentOut.of(s, now) for s in yard.waiting()])

    @app.get("/assignments")
    def list_assignments(
        service: Service,
        plate: Annotated[str | None, Query()] = None,
        all: Annotated[bool, Query(description="Also those taken back")] = False,
    ) -> list[AssignmentOut]:
        def view(yard: Yard) -> list[AssignmentOut]:
            return [
                AssignmentOut.of(a, yard)
                for a in yard.assignments(include_taken_back=all)
                if plate is None or a.plate == normalize_plate(plate)
            ]

        return service.read(view)

    @app.post("/assignments", status_code=codes.HTTP_201_CREATED, responses=_REFUSED)
    def assign(body: AssignBody, service: Service) -> list[AssignmentOut]:
        made = service.assign(
            AssignRequest(
                plate=body.plate,
                shipment_ids=tuple(body.shipment_ids),
                trade_ids=tuple(body.trade_ids),
                by=body.assigned_by,
                suggestion_id=body.suggestion_id,
            )
        )
        return service.read(lambda yard: [AssignmentOut.of(a, yard) for a in made])

    @app.post("/assignments/{assignment_id}/take-back", responses=_REFUSED)
    def take_back(assignment_id: str, body: TakeBackBody, service: Service) -> AssignmentOut:
        taken = service.take_back(assignment_id, body.by, body.reason)
        return service.read(lambda yard: AssignmentOut.of(taken, yard))

    @app.get("/suggestions", responses=_REFUSED)
    def suggestions(service: Service) -> SuggestionOut:
        """Suggested loads for the yard as it is now; solved again only when the yard changed."""
        suggestion = service.suggestion()
        return SuggestionOut.of(suggestion, service.version)

    @app.post("/suggestions/{suggestion_id}/accept", responses=_REFUSED)
    def accept(suggestion_id: str, body: AcceptBody, service: Service) -> AcceptOut:
        outcome = service.accept(suggestion_id, body.accepted_by, body.plates)
        return service.read(
            lambda yard: AcceptOut(
                assigned=[AssignmentOut.of(a, yard) for a in outcome.assigned],
                refused=[
                    {
                        "plate": plate,
                        "error": _code(exc),
                        "detail": str(exc),
                        "detail_zh": exc.message_zh,
                    }
                    for plate, exc in outcome.refused
                ],
            )
        )

    @app.get("/yard")
    def yard(service: Service) -> YardOut:
        """The whole yard in one snapshot, with the latest suggestion solved (maybe stale)."""
        return yard_snapshot(service)

    @app.get("/yard/stream")
    async def yard_stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _yard_events(request, service),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    install_pages(app, service)
    return app


def _code(exc: DispatchError) -> str:
    for kind in type(exc).__mro__:
        if kind in _REFUSALS:
            return _REFUSALS[kind][1]
    return "dispatch_rule"


async def _yard_events(request: Request, service: DispatchService) -> AsyncGenerator[str, None]:
    """The yard on connect, then after every change; a heartbeat comment when nothing happens.

    Changes that come in a burst are sent as one snapshot: the stream wakes, waits a moment for
    the burst to end, and sends the yard as it is then.
    """
    entry = service.listeners.add()
    _, changed = entry
    try:
        yield f"retry: {RETRY_MS}\n\n"
        sent: tuple[int, str | None] | None = None
        while not await request.is_disconnected():
            if service.changes != sent:
                snapshot = await asyncio.to_thread(yard_snapshot, service)
                sent = (
                    snapshot.version,
                    None if snapshot.suggestion is None else snapshot.suggestion.suggestion_id,
                )
                payload = json.dumps(snapshot.model_dump(mode="json"), ensure_ascii=False)
                yield f"event: yard\ndata: {payload}\n\n"
            try:
                await asyncio.wait_for(changed.wait(), timeout=HEARTBEAT_S)
                changed.clear()
                await asyncio.sleep(0.05)
            except TimeoutError:
                yield ": heartbeat\n\n"
    finally:
        service.listeners.remove(entry)
