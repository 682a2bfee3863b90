"""The weigh house: everything the audit trail says, folded into the state decisions need.

The ledger (``ingest.ledger``) is the weigh stations' book of record. Every record kind here is
one thing a person did or a legal parameter that changed; ``WeighHouse.apply`` folds one record
into the state, and the ``decide_*`` methods check a request against that state and return the
body of the record that would make it so, without changing anything. The service appends the
body to the ledger and, once the broker has acknowledged it, applies it. Replaying the ledger
from the start therefore rebuilds exactly the state every decision was taken on: lots, gapless
ticket numbers per station, tare tables, scale parameters and grading profiles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from ingest.domain.errors import (
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
from ingest.domain.ledger import BREAK_KIND, TICKETED_KIND, next_seq
from ingest.domain.scale import ScaleConfig
from ingest.domain.tare import CrateTares, Net, VehiclePasses, crate_net
from melon_contracts.reference import check_variety

MAX_CRATES = 10_000
CORRECTABLE = ("farmer_id", "village_group", "harvest_date")
"""Lot details a correction may change. Weights are never corrected: the lot is re-weighed."""

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class Kind(StrEnum):
    """The kinds of ledger record."""

    SCALE_CONFIGURED = "scale_configured"
    CRATE_TARE_SET = "crate_tare_set"
    VEHICLE_TARE_STORED = "vehicle_tare_stored"
    PROFILE_ACTIVATED = "grading_profile_activated"
    VEHICLE_WEIGHED_IN = "vehicle_weighed_in"
    LOT_WEIGHED = TICKETED_KIND
    LOT_CORRECTED = "lot_corrected"
    TICKET_PRINTED = "ticket_printed"
    TRAIL_BREAK = BREAK_KIND
    """The trail acknowledges damaged records and voids the numbers they claim."""


class StationKind(StrEnum):
    """A platform scale weighs crates; a truck scale weighs vehicles in two passes."""

    PLATFORM = "platform"
    TRUCK = "truck"


@dataclass(frozen=True)
class Station:
    station_id: str
    kind: StationKind
    scale: ScaleConfig


@dataclass(frozen=True)
class LotDetails:
    """What the lot tag and the operator say about a lot, before and apart from its weight."""

    lot_id: str
    farmer_id: str
    variety: str
    crates: int
    village_group: str = ""
    harvest_date: str | None = None
    """ISO date, as the ledger keeps it."""
    crate_type: str | None = None
    sample: Sample = field(default_factory=lambda: Sample(brix=(0.0,)))

    def check(self) -> LotDetails:
        if not _IDENTIFIER.match(self.lot_id):
            raise InvalidLot(f"lot tag {self.lot_id!r} is not a lot id (letters, digits, . _ : -)")
        if not _IDENTIFIER.match(self.farmer_id):
            raise InvalidLot(f"farmer household {self.farmer_id!r} is not an id")
        check_variety(self.variety)
        if not 1 <= self.crates <= MAX_CRATES:
            raise InvalidLot(f"a lot has 1 to {MAX_CRATES} crates, not {self.crates}")
        if len(self.village_group) > 64:
            raise InvalidLot("village group is longer than 64 characters")
        if self.harvest_date is not None:
            try:
                date.fromisoformat(self.harvest_date)
            except ValueError as exc:
                raise InvalidLot(f"harvest date {self.harvest_date!r} is not YYYY-MM-DD") from exc
        return self

    def body(self) -> dict[str, Any]:
        return {
            "lot_id": self.lot_id,
            "farmer_id": self.farmer_id,
            "variety": self.variety,
            "crates": self.crates,
            "village_group": self.village_group,
            "harvest_date": self.harvest_date,
            "crate_type": self.crate_type,
            "sample": sample_body(self.sample),
        }

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> LotDetails:
        return cls(
            lot_id=body["lot_id"],
            farmer_id=body["farmer_id"],
            variety=body["variety"],
            crates=body["crates"],
            village_group=body.get("village_group", ""),
            harvest_date=body.get("harvest_date"),
            crate_type=body.get("crate_type"),
            sample=sample_of(body["sample"]),
        )


def sample_body(sample: Sample) -> dict[str, Any]:
    return {
        "brix": list(sample.brix),
        "fruit_weights_g": list(sample.fruit_weights_g),
        "defects": dict(sorted(sample.defects.items())),
    }


def sample_of(body: Mapping[str, Any]) -> Sample:
    return Sample(
        brix=tuple(float(value) for value in body["brix"]),
        fruit_weights_g=tuple(int(value) for value in body.get("fruit_weights_g", ())),
        defects={str(kind): int(count) for kind, count in body.get("defects", {}).items()},
    )


@dataclass(frozen=True)
class Evidence:
    """Which stable weight a weighing took, so the ticket can be tied to the scale's stream."""

    value_g: int
    stable_since_ms: int
    time_to_stable_ms: int
    readings: int

    def body(self) -> dict[str, Any]:
        return {
            "value_g": self.value_g,
            "stable_since_ms": self.stable_since_ms,
            "time_to_stable_ms": self.time_to_stable_ms,
            "readings": self.readings,
        }


@dataclass(frozen=True)
class Correction:
    seq: int
    changes: dict[str, Any]
    reason: str
    actor: str
    recorded_at: str


@dataclass(frozen=True)
class WeighedLot:
    """A lot as the ledger holds it: its weighing, its ticket, corrections and prints."""

    details: LotDetails
    station_id: str
    ticket_no: int
    seq: int
    mode: str
    gross_g: int
    tare_g: int
    net_g: int
    division_g: int
    operator_id: str
    recorded_at: str
    profile_id: str
    profile_version: int
    plate: str | None = None
    corrections: tuple[Correction, ...] = ()
    prints: int = 0

    @property
    def lot_id(self) -> str:
        return self.details.lot_id

    @property
    def current(self) -> LotDetails:
        """The details with every correction applied, latest last."""
        details = self.details
        for correction in self.corrections:
            details = replace(details, **correction.changes)
        return details


@dataclass(frozen=True)
class PendingVehicle:
    """A truck weighed in with its load, waiting to be weighed out empty."""

    details: LotDetails
    station_id: str
    plate: str
    gross_g: int
    seq: int
    operator_id: str
    division_g: int


def _kg(grams: int) -> str:
    return f"{grams / 1000:.2f} kg"


class WeighHouse:
    """The ledger's state. Not thread-safe: the service holds a lock around it."""

    def __init__(self) -> None:
        self.stations: dict[str, Station] = {}
        self.crate_tares = CrateTares({})
        self.vehicles = VehiclePasses()
        self.pending: dict[str, PendingVehicle] = {}
        """Open weigh-ins by plate."""
        self.profiles: dict[tuple[str, int], GradingProfile] = {}
        self.active_profile: GradingProfile | None = None
        self.lots: dict[str, WeighedLot] = {}
        self.tickets: dict[tuple[str, int], str] = {}
        """(station, ticket number) -> lot id."""
        self.last_ticket: dict[str, int] = {}
        self.void_tickets: list[tuple[str, int, int, int]] = []
        """(station, first, last, seq of the break record) for each range of voided tickets."""
        self.head_seq = 0

    # -- folding the ledger -------------------------------------------------------------------

    def apply(
        self, seq: int, kind: str, actor: str, body: Mapping[str, Any], recorded_at: str
    ) -> None:
        """Fold one ledger record in; records must come in sequence order."""
        if seq != next_seq(self.head_seq, kind, body):
            raise ValueError(f"ledger record seq {seq} follows seq {self.head_seq}")
        handler = getattr(self, f"_apply_{kind}", None)
        if handler is None:
            raise ValueError(f"unknown ledger record kind {kind!r} at seq {seq}")
        handler(seq, actor, body, recorded_at)
        self.head_seq = seq

    def _apply_scale_configured(
        self, seq: int, actor: str, body: Mapping[str, Any], at: str
    ) -> None:
        station_id = body["station_id"]
        self.stations[station_id] = Station(
            station_id=station_id,
            kind=StationKind(body["kind"]),
            scale=scale_config_of(body["scale"]),
        )

    def _apply_crate_tare_set(self, seq: int, actor: str, body: Mapping[str, Any], at: str) -> None:
        self.crate_tares = self.crate_tares.with_tare(body["crate_type"], body["tare_g"])

    def _apply_vehicle_tare_stored(
        self, seq: int, actor: str, body: Mapping[str, Any], at: str
    ) -> None:
        self.vehicles.store_tare(body["plate"], body["tare_g"])

    def _apply_grading_profile_activated(
        self, seq: int, actor: str, body: Mapping[str, Any], at: str
    ) -> None:
        profile = GradingProfile.from_dict(body["profile"])
        self.profiles[(profile.profile_id, profile.version)] = profile
        self.active_profile = profile

    def _apply_vehicle_weighed_in(
        self, seq: int, actor: str, body: Mapping[str, Any], at: str
    ) -> None:
        details = LotDetails.of(body["lot"])
        plate = body["plate"]
        self.vehicles.weigh_in(plate, body["gross_g"], details.lot_id)
        self.pending[self.vehicles.normalise(plate)] = PendingVehicle(
            details=details,
            station_id=body["station_id"],
            plate=plate,
            gross_g=body["gross_g"],
            seq=seq,
            operator_id=actor,
            division_g=body["division_g"],
        )

    def _apply_lot_weighed(self, seq: int, actor: str, body: Mapping[str, Any], at: str) -> None:
        details = LotDetails.of(body["lot"])
        station_id = body["station_id"]
        ticket_no = body["ticket_no"]
        if body["mode"] == "vehicle" and body.get("weigh_in_seq") is not None:
            plate = self.vehicles.normalise(body["plate"])
            self.vehicles.weigh_out(plate, body["tare_g"])
            self.pending.pop(plate, None)
        self.lots[details.lot_id] = WeighedLot(
            details=details,
            station_id=station_id,
            ticket_no=ticket_no,
            seq=seq,
            mode=body["mode"],
            gross_g=body["gross_g"],
            tare_g=body["tare_g"],
            net_g=body["net_g"],
            division_g=body["division_g"],
            operator_id=actor,
            recorded_at=at,
            profile_id=body["profile_id"],
            profile_version=body["profile_version"],
            plate=body.get("plate"),
        )
        self.tickets[(station_id, ticket_no)] = details.lot_id
        self.last_ticket[station_id] = ticket_no

    def _apply_lot_corrected(self, seq: int, actor: str, body: Mapping[str, Any], at: str) -> None:
        lot = self.lots[body["lot_id"]]
        correction = Correction(seq, dict(body["changes"]), body["reason"], actor, at)
        self.lots[lot.lot_id] = replace(lot, corrections=(*lot.corrections, correction))

    def _apply_ticket_printed(self, seq: int, actor: str, body: Mapping[str, Any], at: str) -> None:
        lot = self.lots[self.tickets[(body["station_id"], body["ticket_no"])]]
        self.lots[lot.lot_id] = replace(lot, prints=body["print_no"])

    def _apply_trail_break(self, seq: int, actor: str, body: Mapping[str, Any], at: str) -> None:
        # The damaged records themselves were never applied; only the voided tickets matter
        # here, so that a station's next ticket comes after them.
        for void in body["void_tickets"]:
            station_id, last = void["station_id"], void["last"]
            self.void_tickets.append((station_id, void["first"], last, seq))
            self.last_ticket[station_id] = max(self.last_ticket.get(station_id, 0), last)

    # -- lookups --------------------------------------------------------------------------------

    def station(self, station_id: str) -> Station:
        station = self.stations.get(station_id)
        if station is None:
            known = ", ".join(sorted(self.stations)) or "none"
            raise UnknownStation(f"unknown station {station_id!r}; stations: {known}")
        return station

    def lot(self, lot_id: str) -> WeighedLot:
        lot = self.lots.get(lot_id)
        if lot is None:
            raise UnknownLot(f"no lot {lot_id!r} has been weighed")
        return lot

    def ticket(self, station_id: str, ticket_no: int) -> WeighedLot:
        self.station(station_id)
        lot_id = self.tickets.get((station_id, ticket_no))
        voided_by = next(
            (
                seq
                for station, first, last, seq in self.void_tickets
                if station == station_id and first <= ticket_no <= last
            ),
            None,
        )
        if lot_id is None and voided_by is not None:
            raise UnknownTicket(
                f"ticket {ticket_no} of station {station_id} is void: a damaged record of the "
                f"audit trail claims it, so it is never issued (the break record at seq "
                f"{voided_by} says so); see `melon-ingest audit verify`"
            )
        if lot_id is None:
            last = self.last_ticket.get(station_id, 0)
            raise UnknownTicket(
                f"station {station_id} has no ticket {ticket_no}; its tickets run 1-{last}"
            )
        return self.lots[lot_id]

    def profile(self) -> GradingProfile:
        if self.active_profile is None:
            raise ParameterRejected("no grading profile is active")
        return self.active_profile

    def profile_of(self, lot: WeighedLot) -> GradingProfile:
        return self.profiles[(lot.profile_id, lot.profile_version)]

    # -- decisions: each returns the ledger body that would make the change -----------------------

    def existing(self, lot_id: str) -> WeighedLot | None:
        """The lot when this tag was weighed before: a repeated scan returns its ticket."""
        return self.lots.get(lot_id)

    def check_lot(self, details: LotDetails, station: Station) -> LotDetails:
        details.check()
        # Grading is pure and cheap: a sample the active profile cannot grade (a defect kind it
        # does not know, fruit weights it needs) is refused before the lot is weighed.
        self.profile().grade(details.sample)
        for pending in self.pending.values():
            if pending.details.lot_id == details.lot_id:
                raise StationBusy(
                    f"lot {details.lot_id} is on truck {pending.plate}, weighed in at "
                    f"{pending.station_id}; weigh the truck out to finish it"
                )
        if station.kind is StationKind.PLATFORM and details.crate_type is None:
            raise InvalidLot("a crate weighing needs the crate type, for the tare")
        return details

    def check_crates(self, station_id: str, details: LotDetails) -> dict[str, Any]:
        """Everything about a crate weighing that does not depend on the weight."""
        station = self._station_of_kind(station_id, StationKind.PLATFORM)
        self.check_lot(details, station)
        assert details.crate_type is not None
        self.crate_tares.tare_of(details.crate_type)
        return {}

    def check_vehicle(self, station_id: str, details: LotDetails, plate: str) -> dict[str, Any]:
        station = self._station_of_kind(station_id, StationKind.TRUCK)
        self.check_lot(details, station)
        if not plate.strip():
            raise InvalidLot("a truck weighing needs the plate")
        return {}

    def decide_crate_weighing(
        self, station_id: str, details: LotDetails, gross_g: int
    ) -> dict[str, Any]:
        station = self._station_of_kind(station_id, StationKind.PLATFORM)
        self.check_lot(details, station)
        assert details.crate_type is not None
        net = crate_net(gross_g, details.crates, details.crate_type, self.crate_tares)
        return self._weighed_body(station, details, net, mode="crates")

    def decide_weigh_in(
        self, station_id: str, details: LotDetails, plate: str, gross_g: int
    ) -> dict[str, Any]:
        station = self._station_of_kind(station_id, StationKind.TRUCK)
        self.check_lot(details, station)
        normalised = self.vehicles.normalise(plate)
        if normalised in self.pending:
            open_in = self.pending[normalised]
            raise StationBusy(
                f"truck {normalised} is already weighed in (lot {open_in.details.lot_id}); "
                f"weigh it out first"
            )
        return {
            "station_id": station_id,
            "plate": normalised,
            "gross_g": gross_g,
            "division_g": station.scale.division_g,
            "lot": details.body(),
        }

    def decide_weigh_out(self, station_id: str, plate: str, tare_g: int) -> dict[str, Any]:
        station = self._station_of_kind(station_id, StationKind.TRUCK)
        normalised = self.vehicles.normalise(plate)
        pending = self.pending.get(normalised)
        if pending is None:
            raise UnknownLot(f"truck {normalised} has no open weigh-in")
        if tare_g >= pending.gross_g:
            raise InvalidLot(
                f"weigh-out {_kg(tare_g)} is not below weigh-in {_kg(pending.gross_g)}: "
                f"was the truck unloaded?"
            )
        net = Net(gross_g=pending.gross_g, tare_g=tare_g, net_g=pending.gross_g - tare_g)
        body = self._weighed_body(station, pending.details, net, mode="vehicle")
        body["plate"] = normalised
        body["weigh_in_seq"] = pending.seq
        return body

    def decide_stored_tare_weighing(
        self, station_id: str, details: LotDetails, plate: str, gross_g: int
    ) -> dict[str, Any]:
        station = self._station_of_kind(station_id, StationKind.TRUCK)
        self.check_lot(details, station)
        normalised = self.vehicles.normalise(plate)
        tare_g = self.vehicles.stored_tare(normalised)
        if tare_g is None:
            raise UnknownLot(f"truck {normalised} has no stored tare; weigh it in and out")
        if tare_g >= gross_g:
            raise InvalidLot(f"stored tare {_kg(tare_g)} is not below gross {_kg(gross_g)}")
        net = Net(gross_g=gross_g, tare_g=tare_g, net_g=gross_g - tare_g)
        body = self._weighed_body(station, details, net, mode="vehicle")
        body["plate"] = normalised
        body["weigh_in_seq"] = None
        return body

    def decide_correction(
        self, lot_id: str, changes: Mapping[str, Any], reason: str
    ) -> dict[str, Any]:
        lot = self.lot(lot_id)
        if not reason.strip():
            raise InvalidLot("a correction needs a reason")
        unknown = sorted(set(changes) - set(CORRECTABLE))
        if unknown:
            raise InvalidLot(
                f"cannot correct {', '.join(unknown)}; correctable: {', '.join(CORRECTABLE)}. "
                f"A wrong weight is corrected by weighing the lot again under a new tag"
            )
        if not changes:
            raise InvalidLot("a correction changes at least one field")
        replace(lot.current, **changes).check()
        latest = lot.corrections[-1].seq if lot.corrections else lot.seq
        return {
            "lot_id": lot_id,
            "corrects_seq": lot.seq,
            "previous_seq": latest,
            "changes": dict(changes),
            "reason": reason.strip(),
        }

    def decide_print(self, station_id: str, ticket_no: int) -> dict[str, Any]:
        lot = self.ticket(station_id, ticket_no)
        return {
            "station_id": station_id,
            "ticket_no": ticket_no,
            "lot_id": lot.lot_id,
            "print_no": lot.prints + 1,
            "copy": lot.prints > 0,
        }

    def decide_crate_tare(self, crate_type: str, tare_g: int) -> dict[str, Any]:
        try:
            self.crate_tares.with_tare(crate_type, tare_g)
        except ValueError as exc:
            raise ParameterRejected(str(exc)) from exc
        return {
            "crate_type": crate_type,
            "tare_g": tare_g,
            "previous_g": self.crate_tares.get(crate_type),
        }

    def decide_vehicle_tare(self, plate: str, tare_g: int) -> dict[str, Any]:
        if tare_g <= 0:
            raise ParameterRejected(f"a stored tare is more than 0 kg, not {_kg(tare_g)}")
        normalised = self.vehicles.normalise(plate)
        return {
            "plate": normalised,
            "tare_g": tare_g,
            "previous_g": self.vehicles.stored_tare(normalised),
        }

    def decide_scale(
        self, station_id: str, kind: StationKind, scale: ScaleConfig
    ) -> dict[str, Any]:
        current = self.stations.get(station_id)
        if current is not None and current.kind is not kind:
            raise ParameterRejected(f"station {station_id} is a {current.kind} scale, not {kind}")
        return {
            "station_id": station_id,
            "kind": kind.value,
            "scale": scale_config_body(scale),
            "previous": None if current is None else scale_config_body(current.scale),
        }

    def decide_profile(self, profile: GradingProfile) -> dict[str, Any]:
        known = self.profiles.get((profile.profile_id, profile.version))
        if known is not None and known.digest != profile.digest:
            raise ParameterRejected(
                f"profile {profile.profile_id} version {profile.version} was activated before "
                f"with other content; give the changed profile a new version"
            )
        active = self.active_profile
        return {
            "profile": profile.to_dict(),
            "digest": profile.digest,
            "previous": None if active is None else f"{active.profile_id}@{active.version}",
        }

    def _station_of_kind(self, station_id: str, kind: StationKind) -> Station:
        station = self.station(station_id)
        if station.kind is not kind:
            how = "crates on its platform" if station.kind is StationKind.PLATFORM else "trucks"
            raise WrongStationKind(f"station {station_id} weighs {how}, not this way")
        return station

    def _weighed_body(
        self, station: Station, details: LotDetails, net: Net, mode: str
    ) -> dict[str, Any]:
        if details.lot_id in self.lots:
            raise LotAlreadyWeighed(f"lot {details.lot_id} was already weighed")
        profile = self.profile()
        return {
            "station_id": station.station_id,
            "ticket_no": self.last_ticket.get(station.station_id, 0) + 1,
            "mode": mode,
            "gross_g": net.gross_g,
            "tare_g": net.tare_g,
            "net_g": net.net_g,
            "division_g": station.scale.division_g,
            "profile_id": profile.profile_id,
            "profile_version": profile.version,
            "lot": details.body(),
        }


def scale_config_body(config: ScaleConfig) -> dict[str, Any]:
    return {
        "division_g": config.division_g,
        "max_g": config.max_g,
        "min_load_g": config.min_load_g,
        "motion_band_d": config.motion_band_d,
        "window_ms": config.window_ms,
        "zero_band_g": config.zero_band_g,
        "stale_ms": config.stale_ms,
    }


def scale_config_of(body: Mapping[str, Any]) -> ScaleConfig:
    return ScaleConfig(**body)
