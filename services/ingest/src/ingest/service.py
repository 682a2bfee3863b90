"""The weigh stations' use cases: take a stable weight, ticket a lot, grade it, keep the books.

Every change goes to the audit trail first (``Ledger.append``, acknowledged by the broker), then
its effects follow: the ``LotWeighed`` event for a weighing, the detector's "taken" mark for the
load on the scale. A weighing the trail holds but ``lots.weighed`` does not (the process died in
between, or the broker refused the second write) is published again by ``relay``; its event id
is derived from the record's hash, so readers recognise a repeat.

Threads: HTTP requests, the readings feed, the grader and the projection all call in here. The
ledger's lock serialises decisions and appends; ``_lock`` guards the detectors and read models.
A weighing's ``LotWeighed`` is published after the ledger's lock is let go, so one station's
wait for the broker's acknowledgement of its event does not hold up the next station's
decision; each lot is published by one thread at a time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest import messages, metrics
from ingest.domain.errors import LotAlreadyWeighed
from ingest.domain.grading import Grading, GradingProfile
from ingest.domain.scale import ScaleConfig, ScaleState, StabilityDetector, StableWeight
from ingest.domain.tare import CrateTares
from ingest.domain.weighhouse import (
    Kind,
    LotDetails,
    PendingVehicle,
    StationKind,
    WeighedLot,
    WeighHouse,
)
from ingest.ledger import SYSTEM_ACTOR, Ledger, RawSource
from melon_contracts.events import LedgerRecord, LotGraded, LotWeighed, ScaleReading
from melon_contracts.topics import LOTS_GRADED, LOTS_WEIGHED
from melon_contracts.transport import Publisher, PublishFailed

log = logging.getLogger(__name__)

EVENT_NAMESPACE = uuid.UUID("6f0e8d4c-6b1f-4bde-9a57-3c1d2e0a9b41")


@dataclass(frozen=True)
class StationSetup:
    """A station as the settings describe it; used only until the ledger has its parameters."""

    station_id: str
    kind: StationKind
    scale: ScaleConfig


@dataclass(frozen=True)
class Ticketed:
    """The outcome of a weighing request: the lot and whether this request created it."""

    lot: WeighedLot
    created: bool


@dataclass(frozen=True)
class LiveScale:
    """A station's scale as the console shows it, with a version that changes on every reading."""

    station_id: str
    state: ScaleState | None
    version: int


class WeighStations:
    """The service object the entrypoints drive; safe to call from any thread."""

    def __init__(
        self,
        publisher: Publisher,
        source: RawSource,
        stations: list[StationSetup],
        crate_tares: CrateTares,
        profile: GradingProfile,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publisher = publisher
        self._setup = stations
        self._default_tares = crate_tares
        self._default_profile = profile
        self._clock = clock
        self.house = WeighHouse()
        self.ledger = Ledger(publisher, source, self._apply_record)
        self._lock = threading.Lock()
        self._detectors: dict[str, StabilityDetector] = {}
        self._versions: dict[str, int] = {}
        self._last_reading: dict[str, tuple[str, int]] = {}
        """Per station: the gateway session and sequence number of the last reading applied."""
        self._grades: dict[str, Grading] = {}
        self._published: set[str] = set()
        self._publishing: set[str] = set()
        """Lots whose ``LotWeighed`` a thread is sending now (a request or the relay)."""

    # -- start-up ---------------------------------------------------------------------------------

    def load(self) -> int:
        """Rebuild from the audit trail, then record the defaults of anything never configured."""
        applied = self.ledger.catch_up()
        self._ensure_defaults()
        metrics.LEDGER_HEAD.set(self.ledger.head_seq)
        return applied

    def _ensure_defaults(self) -> None:
        for setup in self._setup:
            if setup.station_id not in self.house.stations:
                self.configure_scale(setup.station_id, setup.kind, setup.scale, SYSTEM_ACTOR)
        known = self.house.crate_tares
        for crate_type, tare_g in self._default_tares.items():
            if known.get(crate_type) is None:
                self.set_crate_tare(crate_type, tare_g, SYSTEM_ACTOR)
        if self.house.active_profile is None:
            self.activate_profile(self._default_profile, SYSTEM_ACTOR)

    def _apply_record(self, record: LedgerRecord) -> None:
        at = record.occurred_at.isoformat()
        with self._lock:
            self.house.apply(record.seq, record.kind, record.actor, record.body, at)
            if record.kind == Kind.SCALE_CONFIGURED:
                station = self.house.stations[record.body["station_id"]]
                detector = self._detectors.get(station.station_id)
                if detector is None:
                    # After a start the scale may still carry a load weighed before a crash:
                    # the first weighing waits until the scale has been empty.
                    detector = StabilityDetector(station.scale)
                    detector.require_zero()
                    self._detectors[station.station_id] = detector
                else:
                    detector.reconfigure(station.scale)
        metrics.LEDGER_HEAD.set(record.seq)

    # -- the scales -------------------------------------------------------------------------------

    def observe(self, reading: ScaleReading) -> None:
        """A reading from the gateway; unknown stations are counted and ignored."""
        at_ms = int(reading.occurred_at.timestamp() * 1000)
        session, _, number = reading.reading_id.rpartition(":")
        sequence = int(number) if number.isdigit() else None
        with self._lock:
            detector = self._detectors.get(reading.station_id)
            if detector is None:
                metrics.REJECTED.labels("reading_unknown_station").inc()
                return
            if sequence is not None:
                last = self._last_reading.get(reading.station_id)
                if last is not None and last[0] == session and sequence <= last[1]:
                    return  # a reading delivered twice (the producer retried)
                self._last_reading[reading.station_id] = (session, sequence)
            detector.observe(
                reading.value_g, at_ms, overload=reading.overload, underload=reading.underload
            )
            self._touch(reading.station_id)
        metrics.READINGS.labels(reading.station_id).inc()

    def live(self, station_id: str) -> LiveScale:
        with self._lock:
            self.house.station(station_id)
            detector = self._detectors[station_id]
            return LiveScale(
                station_id,
                detector.state(self._now_ms()),
                self._versions.get(station_id, 0),
            )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _take(self, station_id: str) -> StableWeight:
        with self._lock:
            detector = self._detectors[station_id]
            weight = detector.take(self._now_ms())
            self._touch(station_id)
            return weight

    def _release(self, station_id: str) -> None:
        with self._lock:
            self._detectors[station_id].release_take()
            self._touch(station_id)

    def _touch(self, station_id: str) -> None:
        """A change the console should show at once (a reading, a take); caller holds the lock."""
        self._versions[station_id] = self._versions.get(station_id, 0) + 1

    # -- weighings --------------------------------------------------------------------------------

    def weigh_crates(self, station_id: str, details: LotDetails, operator: str) -> Ticketed:
        started = time.monotonic()
        with self.ledger.lock:
            existing = self._existing(details.lot_id)
            if existing is not None:
                return Ticketed(existing, created=False)
            self._guard(lambda: self.house.check_crates(station_id, details))
            weight, body = self._weigh(
                station_id,
                lambda gross_g: self.house.decide_crate_weighing(station_id, details, gross_g),
            )
            recorded = self._record_weighing(station_id, body, weight, operator)
        return self._announce(recorded, started)

    def weigh_in(
        self,
        station_id: str,
        details: LotDetails,
        plate: str,
        operator: str,
        use_stored_tare: bool = False,
    ) -> Ticketed | PendingVehicle:
        """A loaded truck on the truck scale: its gross, or with a stored tare, all of it."""
        started = time.monotonic()
        with self.ledger.lock:
            existing = self._existing(details.lot_id)
            if existing is not None:
                return Ticketed(existing, created=False)
            decide = (
                self.house.decide_stored_tare_weighing
                if use_stored_tare
                else self.house.decide_weigh_in
            )
            self._guard(lambda: self.house.check_vehicle(station_id, details, plate))
            weight, body = self._weigh(
                station_id, lambda gross_g: decide(station_id, details, plate, gross_g)
            )
            if not use_stored_tare:
                try:
                    self.ledger.append(
                        Kind.VEHICLE_WEIGHED_IN,
                        operator,
                        body,
                        station_id=station_id,
                        correlation_id=details.lot_id,
                    )
                except PublishFailed:
                    self._release(station_id)
                    raise
                with self._lock:
                    return self.house.pending[body["plate"]]
            recorded = self._record_weighing(station_id, body, weight, operator)
        return self._announce(recorded, started)

    def weigh_out(self, station_id: str, plate: str, operator: str, store_tare: bool) -> Ticketed:
        """The unloaded truck back on the scale: its tare completes the lot's weighing."""
        started = time.monotonic()
        with self.ledger.lock:
            self._guard(lambda: self.house.decide_weigh_out(station_id, plate, 0))
            weight, body = self._weigh(
                station_id,
                lambda tare_g: self.house.decide_weigh_out(station_id, plate, tare_g),
            )
            recorded = self._record_weighing(station_id, body, weight, operator)
            if store_tare:
                self.set_vehicle_tare(plate, weight.value_g, operator)
        return self._announce(recorded, started)

    def _weigh(
        self, station_id: str, decide: Callable[[int], dict[str, Any]]
    ) -> tuple[StableWeight, dict[str, Any]]:
        """Take the stable weight and decide on it; a refused decision gives the load back."""
        weight = self._take(station_id)
        try:
            return weight, self._guard(lambda: decide(weight.value_g))
        except Exception:
            self._release(station_id)
            raise

    def _existing(self, lot_id: str) -> WeighedLot | None:
        with self._lock:
            return self.house.existing(lot_id)

    def _guard(self, decide: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a decision under the state lock."""
        with self._lock:
            return decide()

    def _record_weighing(
        self, station_id: str, body: dict[str, Any], weight: StableWeight, operator: str
    ) -> tuple[WeighedLot, LedgerRecord]:
        """Append the weighing to the audit trail; the caller holds the ledger's lock."""
        body["evidence"] = {
            "value_g": weight.value_g,
            "stable_since_ms": weight.stable_since_ms,
            "time_to_stable_ms": weight.time_to_stable_ms,
            "readings": weight.readings_in_window,
        }
        appending = time.monotonic()
        try:
            record = self.ledger.append(
                Kind.LOT_WEIGHED,
                operator,
                body,
                station_id=station_id,
                correlation_id=body["lot"]["lot_id"],
            )
        except PublishFailed:
            self._release(station_id)
            raise
        metrics.LEDGER_APPEND.observe(time.monotonic() - appending)
        metrics.LOTS_WEIGHED.labels(station_id, body["mode"]).inc()
        metrics.TIME_TO_STABLE.labels(station_id).observe(weight.time_to_stable_ms / 1000)
        with self._lock:
            return self.house.lot(body["lot"]["lot_id"]), record

    def _announce(self, recorded: tuple[WeighedLot, LedgerRecord], started: float) -> Ticketed:
        """Publish a recorded weighing's event (the relay retries it if the broker refuses)."""
        lot, record = recorded
        self._publish_weighed(lot, record)
        metrics.WEIGHING.observe(time.monotonic() - started)
        return Ticketed(lot, created=True)

    def _publish_weighed(self, lot: WeighedLot, record: LedgerRecord | None = None) -> bool:
        """Publish a weighing's event; False if it is published already, being published by
        another thread (the relay or the request that recorded it), or the broker refused it
        (the relay retries)."""
        with self._lock:
            if lot.lot_id in self._published or lot.lot_id in self._publishing:
                return False
            self._publishing.add(lot.lot_id)
        try:
            event = messages.lot_weighed(lot, self._event_id(lot), record)
            self._publisher.publish(LOTS_WEIGHED, lot.lot_id, event)
        except PublishFailed as exc:
            log.warning(
                "lot %s is in the audit trail, event not yet published: %s", lot.lot_id, exc
            )
            sent = False
        else:
            sent = True
        finally:
            with self._lock:
                self._publishing.discard(lot.lot_id)
                if sent:
                    self._published.add(lot.lot_id)
        self._count_unpublished()
        return sent

    def _event_id(self, lot: WeighedLot) -> uuid.UUID:
        return uuid.uuid5(EVENT_NAMESPACE, f"lot_weighed:{lot.seq}:{lot.lot_id}")

    def relay(self) -> int:
        """Publish each weighing of the trail not yet seen on ``lots.weighed``; returns how many."""
        with self._lock:
            missing = [lot for lot in self.house.lots.values() if lot.lot_id not in self._published]
        sent = sum(self._publish_weighed(lot) for lot in sorted(missing, key=lambda lot: lot.seq))
        if sent:
            log.info("relay published %d weighing(s) the trail held but the topic did not", sent)
        return sent

    def _count_unpublished(self) -> None:
        with self._lock:
            metrics.UNPUBLISHED.set(len(self.house.lots) - len(self._published))

    # -- corrections, prints and legal parameters ----------------------------------------------

    def correct(
        self, lot_id: str, changes: Mapping[str, Any], reason: str, operator: str
    ) -> WeighedLot:
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_correction(lot_id, changes, reason))
            self.ledger.append(Kind.LOT_CORRECTED, operator, body, correlation_id=lot_id)
            with self._lock:
                return self.house.lot(lot_id)

    def print_ticket(
        self, station_id: str, ticket_no: int, operator: str
    ) -> tuple[WeighedLot, int]:
        """Record one print of a ticket; the first is the original, every later one a copy."""
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_print(station_id, ticket_no))
            self.ledger.append(
                Kind.TICKET_PRINTED,
                operator,
                body,
                station_id=station_id,
                correlation_id=body["lot_id"],
            )
            with self._lock:
                return self.house.lot(body["lot_id"]), body["print_no"]

    def set_crate_tare(self, crate_type: str, tare_g: int, operator: str) -> None:
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_crate_tare(crate_type, tare_g))
            self.ledger.append(Kind.CRATE_TARE_SET, operator, body, correlation_id=crate_type)

    def set_vehicle_tare(self, plate: str, tare_g: int, operator: str) -> None:
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_vehicle_tare(plate, tare_g))
            self.ledger.append(
                Kind.VEHICLE_TARE_STORED, operator, body, correlation_id=body["plate"]
            )

    def configure_scale(
        self, station_id: str, kind: StationKind, scale: ScaleConfig, operator: str
    ) -> None:
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_scale(station_id, kind, scale))
            self.ledger.append(
                Kind.SCALE_CONFIGURED,
                operator,
                body,
                station_id=station_id,
                correlation_id=station_id,
            )

    def activate_profile(self, profile: GradingProfile, operator: str) -> None:
        with self.ledger.lock:
            body = self._guard(lambda: self.house.decide_profile(profile))
            self.ledger.append(
                Kind.PROFILE_ACTIVATED, operator, body, correlation_id=profile.profile_id
            )

    # -- grading and the read model -----------------------------------------------------------

    def grade(self, event: LotWeighed) -> LotGraded | None:
        """Grade a published weighing once, under the profile active when it was weighed."""
        with self._lock:
            self._published.add(event.lot_id)
            if event.lot_id in self._grades:
                return None
            lot = self.house.lots.get(event.lot_id)
            if lot is None or lot.seq != event.ledger_seq:
                raise LotAlreadyWeighed(
                    f"lot {event.lot_id} seq {event.ledger_seq} is not a weighing of the audit "
                    f"trail; refusing to grade it"
                )
            profile = self.house.profile_of(lot)
        grading = profile.grade(lot.details.sample)
        graded = messages.lot_graded(lot, grading, self._graded_id(lot))
        self._publisher.publish(LOTS_GRADED, lot.lot_id, graded)
        with self._lock:
            first = lot.lot_id not in self._grades
            self._grades[lot.lot_id] = grading
        if first:
            metrics.KG_BY_GRADE.labels(grading.grade.value).inc(lot.net_g / 1000)
        self._count_unpublished()
        return graded

    def _graded_id(self, lot: WeighedLot) -> uuid.UUID:
        return uuid.uuid5(EVENT_NAMESPACE, f"lot_graded:{lot.seq}:{lot.lot_id}")

    def apply(self, event: LotWeighed | LotGraded) -> None:
        """Fold an event from the topics into the read model; repeats change nothing."""
        with self._lock:
            if isinstance(event, LotWeighed):
                self._published.add(event.lot_id)
            else:
                self._grades.setdefault(event.lot_id, messages.grading_of(event))
        self._count_unpublished()

    def grading(self, lot_id: str) -> Grading | None:
        with self._lock:
            return self._grades.get(lot_id)

    def lot(self, lot_id: str) -> WeighedLot:
        with self._lock:
            return self.house.lot(lot_id)

    def lots(self, limit: int) -> list[WeighedLot]:
        with self._lock:
            return sorted(self.house.lots.values(), key=lambda lot: lot.seq, reverse=True)[:limit]

    def ticket(self, station_id: str, ticket_no: int) -> WeighedLot:
        with self._lock:
            return self.house.ticket(station_id, ticket_no)

    def read(self, read: Callable[[WeighHouse], Any]) -> Any:
        """Run a read of the weigh house under the lock."""
        with self._lock:
            return read(self.house)
