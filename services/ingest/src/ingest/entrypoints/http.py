"""The weigh stations' HTTP API: the live scale, weighings, tickets, corrections, parameters.

Weights come from the scale, never from the request: a weighing takes the station's current
stable weight. Weights people type (tares) are kg strings, taken to the gram exactly. Refusals use
the hall's error format (``melon_contracts.web``); a scale refusal answers 409 with its reason as
the code (``unstable``, ``overload`` ...).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from ingest import metrics
from ingest.domain.errors import (
    IngestError,
    InvalidLot,
    LotAlreadyWeighed,
    ParameterRejected,
    StationBusy,
    UnknownLot,
    UnknownStation,
    UnknownTicket,
    WrongStationKind,
)
from ingest.domain.grading import GradingProfile, Sample
from ingest.domain.scale import ScaleConfig, WeighingRefused
from ingest.domain.weighhouse import LotDetails, PendingVehicle, StationKind, WeighedLot
from ingest.entrypoints import pages
from ingest.runtime import IngestService, NotReady
from ingest.service import Ticketed, WeighStations
from melon_contracts.health import health as shared_health
from melon_contracts.reference import VARIETIES, Identifier, UnknownVariety
from melon_contracts.transport import PublishFailed
from melon_contracts.units import UnitError, g_to_kg, kg_to_g
from melon_contracts.web import Refusals, documented, install_error_handlers

_REFUSALS: Refusals = {
    UnknownStation: (status.HTTP_404_NOT_FOUND, "unknown_station"),
    UnknownLot: (status.HTTP_404_NOT_FOUND, "unknown_lot"),
    UnknownTicket: (status.HTTP_404_NOT_FOUND, "unknown_ticket"),
    UnknownVariety: (status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown_variety"),
    InvalidLot: (status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_lot"),
    UnitError: (status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_weight"),
    WeighingRefused: (status.HTTP_409_CONFLICT, "scale_refused"),
    WrongStationKind: (status.HTTP_409_CONFLICT, "wrong_station_kind"),
    StationBusy: (status.HTTP_409_CONFLICT, "station_busy"),
    LotAlreadyWeighed: (status.HTTP_409_CONFLICT, "lot_already_weighed"),
    ParameterRejected: (status.HTTP_422_UNPROCESSABLE_CONTENT, "parameter_rejected"),
    IngestError: (status.HTTP_400_BAD_REQUEST, "ingest_error"),
    NotReady: (status.HTTP_503_SERVICE_UNAVAILABLE, "not_ready"),
    PublishFailed: (status.HTTP_503_SERVICE_UNAVAILABLE, "broker_unavailable"),
}
_DOCUMENTED = documented(_REFUSALS)
STREAM_TICK_S = 0.1
"""How often a console's scale stream looks for a change: at most ten events a second."""

Kg = Annotated[Decimal, Field(allow_inf_nan=False, description='Kilograms, e.g. "1.6"')]


def _grams(kg: Decimal, what: str) -> int:
    grams = kg_to_g(kg)
    if grams <= 0:
        raise InvalidLot(f"{what} must be more than 0 kg, not {kg}")
    return grams


class SampleBody(BaseModel):
    """The operator's quality sample: one Brix reading per fruit, optional weights and defects."""

    model_config = ConfigDict(extra="forbid")

    brix: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1, max_length=100)
    fruit_weights_g: list[int] = Field(default_factory=list, max_length=100)
    defects: dict[str, int] = Field(default_factory=dict)

    def sample(self) -> Sample:
        try:
            return Sample(
                brix=tuple(self.brix),
                fruit_weights_g=tuple(self.fruit_weights_g),
                defects=dict(self.defects),
            )
        except ValueError as exc:
            raise InvalidLot(f"sample: {exc}") from exc


class LotBody(BaseModel):
    """A scanned lot tag and what the operator records about the lot."""

    model_config = ConfigDict(extra="forbid")

    lot_id: Identifier = Field(description="The lot tag as scanned")
    farmer_id: Identifier = Field(description="Farmer household id")
    village_group: str = Field(default="", max_length=64)
    variety: Identifier = Field(description="A code from the variety list, e.g. xizhoumi")
    harvest_date: date | None = None
    crates: int = Field(strict=True)
    crate_type: Identifier | None = None
    sample: SampleBody
    operator_id: Identifier

    def details(self) -> LotDetails:
        return LotDetails(
            lot_id=self.lot_id,
            farmer_id=self.farmer_id,
            variety=self.variety,
            crates=self.crates,
            village_group=self.village_group,
            harvest_date=None if self.harvest_date is None else self.harvest_date.isoformat(),
            crate_type=self.crate_type,
            sample=self.sample.sample(),
        )


class WeighInBody(LotBody):
    plate: str = Field(min_length=2, max_length=16)
    use_stored_tare: bool = Field(
        default=False, description="Complete the weighing at once with the truck's stored tare"
    )


class WeighOutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: str = Field(min_length=2, max_length=16)
    operator_id: Identifier
    store_tare: bool = Field(default=False, description="Keep this tare for the truck's next visit")


class CorrectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: dict[str, Any]
    reason: str = Field(min_length=1, max_length=500)
    operator_id: Identifier


class PrintBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_id: Identifier


class TareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tare_kg: Kg
    operator_id: Identifier


class ScaleBody(BaseModel):
    """A scale's legal parameters; a change is an audit-trail record."""

    model_config = ConfigDict(extra="forbid")

    division_g: int = Field(gt=0, le=100_000)
    max_kg: Kg
    min_load_kg: Kg
    motion_band_d: int = Field(default=1, ge=0, le=10)
    window_ms: int = Field(default=1000, ge=100, le=30_000)
    stale_ms: int = Field(default=2000, ge=200, le=60_000)
    operator_id: Identifier


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: dict[str, Any] = Field(description="The profile as its YAML file holds it, in JSON")
    operator_id: Identifier


def _kg(grams: int | None, division_g: int = 1) -> str | None:
    """Kilograms to the scale's resolution: d = 200 g shows 464.0, d = 20 kg shows 18460."""
    if grams is None:
        return None
    places = 3
    while places > 0 and division_g % 10 ** (4 - places) == 0:
        places -= 1
    return f"{g_to_kg(grams):.{places}f}"


def ticket_view(stations: WeighStations, lot: WeighedLot) -> dict[str, Any]:
    """A lot and its ticket as the console, the printed ticket and scripts read it."""
    details = lot.current
    grading = stations.grading(lot.lot_id)
    view: dict[str, Any] = {
        "lot_id": lot.lot_id,
        "status": "graded" if grading is not None else "weighed",
        "station_id": lot.station_id,
        "ticket_no": lot.ticket_no,
        "ledger_seq": lot.seq,
        "mode": lot.mode,
        "plate": lot.plate,
        "farmer_id": details.farmer_id,
        "village_group": details.village_group,
        "variety": details.variety,
        "variety_zh": VARIETIES.get(details.variety, ("", ""))[0],
        "variety_en": VARIETIES.get(details.variety, ("", ""))[1],
        "harvest_date": details.harvest_date,
        "crates": details.crates,
        "crate_type": details.crate_type,
        "gross_g": lot.gross_g,
        "tare_g": lot.tare_g,
        "net_g": lot.net_g,
        "gross_kg": _kg(lot.gross_g, lot.division_g),
        "tare_kg": _kg(lot.tare_g, lot.division_g),
        "net_kg": _kg(lot.net_g, lot.division_g),
        "division_g": lot.division_g,
        "sample": {
            "brix": list(details.sample.brix),
            "fruit_weights_g": list(details.sample.fruit_weights_g),
            "defects": dict(details.sample.defects),
        },
        "operator_id": lot.operator_id,
        "weighed_at": lot.recorded_at,
        "prints": lot.prints,
        "corrections": [
            {
                "seq": c.seq,
                "changes": c.changes,
                "reason": c.reason,
                "by": c.actor,
                "at": c.recorded_at,
            }
            for c in lot.corrections
        ],
        "grade": None,
    }
    if grading is not None:
        view["grade"] = {
            "grade": grading.grade.value,
            "grade_zh": grading.grade.zh,
            "profile_id": grading.profile_id,
            "profile_version": grading.profile_version,
            "size_code": grading.size_code,
            "brix_mean": grading.brix_mean,
            "brix_samples": grading.brix_samples,
            "fruit_weight_mean_g": grading.fruit_weight_mean_g,
            "defect_percent": grading.defect_percent,
            "reason": grading.reason,
            "reason_en": grading.reason_en,
        }
    return view


def pending_view(pending: PendingVehicle) -> dict[str, Any]:
    return {
        "status": "weighed_in",
        "lot_id": pending.details.lot_id,
        "station_id": pending.station_id,
        "plate": pending.plate,
        "gross_g": pending.gross_g,
        "gross_kg": _kg(pending.gross_g, pending.division_g),
        "ledger_seq": pending.seq,
    }


def scale_view(stations: WeighStations, station_id: str) -> dict[str, Any]:
    live = stations.live(station_id)
    station = stations.read(lambda house: house.station(station_id))
    state = live.state
    return {
        "station_id": station_id,
        "kind": station.kind.value,
        "version": live.version,
        "status": None if state is None else state.status.value,
        "value_g": None if state is None else state.value_g,
        "value_kg": None if state is None else _kg(state.value_g, station.scale.division_g),
        "stable": state is not None and state.status.value == "stable",
        "taken": state is not None and state.taken,
        "division_g": station.scale.division_g,
        "max_g": station.scale.max_g,
        "min_load_g": station.scale.min_load_g,
    }


def _service(request: Request) -> IngestService:
    return cast(IngestService, request.app.state.service)


def _stations(service: Annotated[IngestService, Depends(_service)]) -> WeighStations:
    return service.stations


def _writable(service: Annotated[IngestService, Depends(_service)]) -> WeighStations:
    service.require_loaded()
    return service.stations


ServiceDep = Annotated[IngestService, Depends(_service)]
StationsDep = Annotated[WeighStations, Depends(_stations)]
WritableDep = Annotated[WeighStations, Depends(_writable)]
Limit = Annotated[int, Query(ge=1, le=1000, description="How many lots at most")]
Lang = Annotated[Literal["zh", "en"], Query(description="Page language")]


def create_app(service: IngestService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = FastAPI(title="Melon Hall ingest", version="0.2.0", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app, _REFUSALS, lambda code: metrics.REJECTED.labels(code).inc())
    pages.install(app)

    def answer(ticketed: Ticketed, response: Response, stations: WeighStations) -> dict[str, Any]:
        if not ticketed.created:
            response.status_code = status.HTTP_200_OK
        view = ticket_view(stations, ticketed.lot)
        view["repeated"] = not ticketed.created
        return view

    @app.get("/stations")
    def list_stations(stations: StationsDep) -> list[dict[str, Any]]:
        ids = stations.read(lambda house: sorted(house.stations))
        return [scale_view(stations, station_id) for station_id in ids]

    @app.get("/stations/{station_id}/scale", responses=_DOCUMENTED)
    def scale(station_id: str, stations: StationsDep) -> dict[str, Any]:
        """The scale right now: value, status (stable, motion, overload ...), taken or not."""
        return scale_view(stations, station_id)

    @app.get("/stations/{station_id}/scale/stream", responses=_DOCUMENTED)
    async def scale_stream(station_id: str, stations: StationsDep) -> StreamingResponse:
        """Server-sent events: one ``scale`` event per change (at most 10 a second)."""
        scale_view(stations, station_id)  # 404 before the stream starts

        async def events() -> AsyncIterator[str]:
            # The view is read on the event loop: it takes the state lock for microseconds,
            # where a thread per stream waiting for the next change would use up the default
            # executor's few workers once a hall has more consoles open than it has cores.
            version = -1
            sent_at = 0.0
            while True:
                view = scale_view(stations, station_id)
                # Send on every change, and at least once a second, so a scale that stops
                # sending shows as offline on the console within its stale time.
                if view["version"] != version or time.monotonic() - sent_at >= 1.0:
                    version, sent_at = view["version"], time.monotonic()
                    yield f"event: scale\ndata: {json.dumps(view)}\n\n"
                await asyncio.sleep(STREAM_TICK_S)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post(
        "/stations/{station_id}/weighings",
        status_code=status.HTTP_201_CREATED,
        responses=_DOCUMENTED,
    )
    def weigh_crates(
        station_id: str, body: LotBody, stations: WritableDep, response: Response
    ) -> dict[str, Any]:
        """Bind the platform scale's stable weight to a scanned lot and issue its ticket.

        A lot tag scanned again returns its existing ticket with 200; it never makes a second lot.
        """
        ticketed = stations.weigh_crates(station_id, body.details(), body.operator_id)
        return answer(ticketed, response, stations)

    @app.post(
        "/stations/{station_id}/weigh-ins",
        status_code=status.HTTP_201_CREATED,
        responses=_DOCUMENTED,
    )
    def weigh_in(
        station_id: str, body: WeighInBody, stations: WritableDep, response: Response
    ) -> dict[str, Any]:
        """A loaded truck on the truck scale: records its gross (202), or with
        ``use_stored_tare`` completes the weighing at once (201)."""
        outcome = stations.weigh_in(
            station_id, body.details(), body.plate, body.operator_id, body.use_stored_tare
        )
        if isinstance(outcome, Ticketed):
            return answer(outcome, response, stations)
        response.status_code = status.HTTP_202_ACCEPTED
        return pending_view(outcome)

    @app.post(
        "/stations/{station_id}/weigh-outs",
        status_code=status.HTTP_201_CREATED,
        responses=_DOCUMENTED,
    )
    def weigh_out(
        station_id: str, body: WeighOutBody, stations: WritableDep, response: Response
    ) -> dict[str, Any]:
        """The emptied truck back on the scale: its tare completes the lot and issues the ticket."""
        ticketed = stations.weigh_out(station_id, body.plate, body.operator_id, body.store_tare)
        return answer(ticketed, response, stations)

    @app.get("/stations/{station_id}/tickets/{ticket_no}", responses=_DOCUMENTED)
    def get_ticket(station_id: str, ticket_no: int, stations: StationsDep) -> dict[str, Any]:
        return ticket_view(stations, stations.ticket(station_id, ticket_no))

    @app.post(
        "/stations/{station_id}/tickets/{ticket_no}/prints",
        status_code=status.HTTP_201_CREATED,
        responses=_DOCUMENTED,
    )
    def print_ticket(
        station_id: str, ticket_no: int, body: PrintBody, stations: WritableDep
    ) -> dict[str, Any]:
        """Record a print of the ticket: the first is the original, later ones say COPY."""
        lot, print_no = stations.print_ticket(station_id, ticket_no, body.operator_id)
        return {
            "station_id": station_id,
            "ticket_no": ticket_no,
            "lot_id": lot.lot_id,
            "print_no": print_no,
            "copy": print_no > 1,
            "url": f"/stations/{station_id}/tickets/{ticket_no}/prints/{print_no}",
        }

    @app.get(
        "/stations/{station_id}/tickets/{ticket_no}/prints/{print_no}",
        response_class=HTMLResponse,
        responses=_DOCUMENTED,
    )
    def ticket_page(
        station_id: str, ticket_no: int, print_no: int, stations: StationsDep, lang: Lang = "zh"
    ) -> HTMLResponse:
        """The printable weigh ticket (磅单) of a recorded print."""
        lot = stations.ticket(station_id, ticket_no)
        if not 1 <= print_no <= lot.prints:
            raise UnknownTicket(
                f"ticket {station_id}/{ticket_no} was printed {lot.prints} time(s), "
                f"there is no print {print_no}"
            )
        return HTMLResponse(pages.ticket_html(ticket_view(stations, lot), print_no, lang))

    @app.get("/lots/{lot_id}", responses=_DOCUMENTED)
    def get_lot(lot_id: str, stations: StationsDep) -> dict[str, Any]:
        return ticket_view(stations, stations.lot(lot_id))

    @app.get("/lots")
    def list_lots(stations: StationsDep, limit: Limit = 100) -> dict[str, Any]:
        """Lots, newest weighing first."""
        return {"lots": [ticket_view(stations, lot) for lot in stations.lots(limit)]}

    @app.post(
        "/lots/{lot_id}/corrections",
        status_code=status.HTTP_201_CREATED,
        responses=_DOCUMENTED,
    )
    def correct_lot(lot_id: str, body: CorrectionBody, stations: WritableDep) -> dict[str, Any]:
        """Correct a lot's details with a reason; the original record stays as it was."""
        lot = stations.correct(lot_id, body.changes, body.reason, body.operator_id)
        return ticket_view(stations, lot)

    @app.get("/crate-tares")
    def crate_tares(stations: StationsDep) -> dict[str, Any]:
        tares = stations.read(lambda house: dict(house.crate_tares.items()))
        return {crate: {"tare_g": g, "tare_kg": _kg(g)} for crate, g in sorted(tares.items())}

    @app.put("/crate-tares/{crate_type}", responses=_DOCUMENTED)
    def set_crate_tare(crate_type: str, body: TareBody, stations: WritableDep) -> dict[str, Any]:
        """Set a crate type's tare; a legal parameter, recorded in the audit trail."""
        grams = _grams(body.tare_kg, "a crate tare")
        stations.set_crate_tare(crate_type, grams, body.operator_id)
        return {"crate_type": crate_type, "tare_g": grams, "tare_kg": _kg(grams)}

    @app.put("/vehicle-tares/{plate}", responses=_DOCUMENTED)
    def set_vehicle_tare(plate: str, body: TareBody, stations: WritableDep) -> dict[str, Any]:
        """Store a truck's tare for one-pass weighings; recorded in the audit trail."""
        grams = _grams(body.tare_kg, "a stored tare")
        stations.set_vehicle_tare(plate, grams, body.operator_id)
        stored = stations.read(lambda house: house.vehicles.normalise(plate))
        return {"plate": stored, "tare_g": grams, "tare_kg": _kg(grams)}

    @app.put("/stations/{station_id}/scale-config", responses=_DOCUMENTED)
    def configure_scale(station_id: str, body: ScaleBody, stations: WritableDep) -> dict[str, Any]:
        """Change a scale's legal parameters (d, Max, Min, motion band, window)."""
        kind = stations.read(lambda house: house.station(station_id).kind)
        try:
            config = ScaleConfig(
                division_g=body.division_g,
                max_g=kg_to_g(body.max_kg),
                min_load_g=kg_to_g(body.min_load_kg),
                motion_band_d=body.motion_band_d,
                window_ms=body.window_ms,
                stale_ms=body.stale_ms,
            )
        except ValueError as exc:
            raise ParameterRejected(f"scale parameters: {exc}") from exc
        stations.configure_scale(station_id, StationKind(kind), config, body.operator_id)
        return scale_view(stations, station_id)

    @app.get("/grading-profiles")
    def grading_profiles(stations: StationsDep) -> dict[str, Any]:
        def read(house: Any) -> dict[str, Any]:
            active = house.profile()
            return {
                "active": {
                    "profile_id": active.profile_id,
                    "version": active.version,
                    "needs_fruit_weights": active.needs_fruit_weights,
                    "defect_kinds": [
                        {"kind": kind.kind, "zh": kind.zh, "en": kind.en}
                        for kind in active.defect_kinds
                    ],
                },
                "profiles": [
                    {"profile_id": pid, "version": v, "digest": p.digest}
                    for (pid, v), p in sorted(house.profiles.items())
                ],
            }

        return cast(dict[str, Any], stations.read(read))

    @app.post("/grading-profiles", status_code=status.HTTP_201_CREATED, responses=_DOCUMENTED)
    def activate_profile(body: ProfileBody, stations: WritableDep) -> dict[str, Any]:
        """Activate a grading profile; lots weighed from now on are graded under it."""
        try:
            profile = GradingProfile.from_dict(body.profile)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterRejected(f"grading profile: {exc}") from exc
        stations.activate_profile(profile, body.operator_id)
        return {
            "profile_id": profile.profile_id,
            "version": profile.version,
            "digest": profile.digest,
        }

    @app.get("/audit/head")
    def audit_head(stations: StationsDep) -> dict[str, Any]:
        """The audit trail's head: its last sequence number and hash."""
        return {"seq": stations.ledger.head_seq, "hash": stations.ledger.head_hash}

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz(service: ServiceDep) -> JSONResponse:
        """200 ``ok``; 503 ``starting`` naming what is still loading, or ``degraded`` while the
        broker does not answer (nothing can be weighed).

        ``degraded`` with 200 names what works but needs a person: damaged records fenced off
        the audit trail, each in ``ledger_damage`` with its offset and reason.
        """
        health = service.health()
        code, body = shared_health(health.not_ready, health.unwritable, health.degraded)
        if health.ledger_damage:
            body["ledger_damage"] = [
                {
                    "offset": f.offset,
                    "damage": f.damage.value,
                    "detail": f.detail,
                    "acknowledged_by_seq": f.acknowledged_by,
                }
                for f in health.ledger_damage
            ]
        return JSONResponse(body, status_code=code)

    return app
