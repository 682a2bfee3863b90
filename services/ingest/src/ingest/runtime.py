"""The running service: the weigh stations plus the background work that feeds and guards them.

Start-up order matters and runs in one background thread, so the HTTP server answers health
checks meanwhile:

1. rebuild the weigh house from the audit trail (retrying while the broker is unreachable);
2. replay ``lots.weighed`` and ``lots.graded`` to learn which weighings were published and graded;
3. publish the weighings the trail holds but the topic does not (a crash between the two writes);
4. start the grader, which grades each weighing once;
5. keep relaying now and then, in case the broker refused a publish while a request was served.

The live readings feed starts at once: the console shows the scale even while the rest loads.
Requests that change anything are refused with 503 until step 1 is done. Damaged records on the
trail do not hold step 1 up: they are fenced off, and health reports the service degraded, ready
but with the damage named, for as long as the trail holds it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.domain.ledger import Finding
from ingest.service import WeighStations
from melon_contracts.health import BrokerWatch
from melon_contracts.transport import Reader, not_ready

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """The service has not finished loading its audit trail, so it cannot take decisions yet."""


@dataclass(frozen=True)
class Health:
    """Whether the service can answer truthfully; ``not_ready`` names each part that is not,
    ``degraded`` each part that works but with something wrong a person must look into."""

    not_ready: dict[str, str]
    degraded: dict[str, str] = field(default_factory=dict)
    ledger_damage: tuple[Finding, ...] = ()
    """The audit trail's fenced-off records."""
    unwritable: dict[str, str] = field(default_factory=dict)
    """Why nothing can be written now (the broker does not answer), by reason."""

    @property
    def ok(self) -> bool:
        return not self.not_ready


SHOWN_OFFSETS = 10


def damage_report(damage: tuple[Finding, ...]) -> str:
    """The audit trail's damage in one line, for health checks and people."""
    offsets = ", ".join(str(f.offset) for f in damage[:SHOWN_OFFSETS])
    if len(damage) > SHOWN_OFFSETS:
        offsets += f" and {len(damage) - SHOWN_OFFSETS} more"
    acknowledged = sum(1 for f in damage if f.acknowledged_by is not None)
    first = damage[0]
    return (
        f"audit trail damaged: {len(damage)} record(s) fenced off at offset(s) {offsets} "
        f"({acknowledged} acknowledged on the trail); first: {first.damage.value}: "
        f"{first.detail}. Weighing goes on from the last good record; run "
        f"`melon-ingest audit verify` and investigate"
    )


@dataclass
class IngestService:
    """What ``bootstrap`` builds and the entrypoints run."""

    stations: WeighStations
    projection: Reader | None = None
    grader: Reader | None = None
    readings: Reader | None = None
    broker: BrokerWatch | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    relay_every_s: float = 2.0
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _loaded: threading.Event = field(default_factory=threading.Event, init=False)
    _grader_started: threading.Event = field(default_factory=threading.Event, init=False)
    _starter: threading.Thread | None = field(default=None, init=False)
    _load_state: str = field(default="loading the audit trail", init=False)

    def start(self) -> None:
        if self.broker is not None:
            self.broker.start()
        if self.readings is not None:
            self.readings.start()
        self._starter = threading.Thread(target=self._start_up, name="ingest-start", daemon=True)
        self._starter.start()

    def start_in_line(self) -> None:
        """Load synchronously without readers (unit tests and in-memory use)."""
        self.stations.load()
        self._loaded.set()

    def _start_up(self) -> None:
        if not self._load():
            return
        projection = self.projection
        if projection is not None:
            projection.start()
            while not projection.caught_up.wait(timeout=0.2):
                if self._stopping.is_set() or projection.failure is not None:
                    return
        self._relay()
        if self.grader is not None and not self._stopping.is_set():
            self.grader.start()
            self._grader_started.set()
        while not self._stopping.wait(self.relay_every_s):
            self._relay()

    def _load(self) -> bool:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                applied = self.stations.load()
            except Exception as exc:
                self._load_state = f"loading the audit trail: {type(exc).__name__}: {exc}"
                log.warning("%s; retrying in %.1f s", self._load_state, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info(
                "audit trail loaded: %d records replayed, head seq %d",
                applied,
                self.stations.ledger.head_seq,
            )
            self._loaded.set()
            return True
        return False

    def _relay(self) -> None:
        try:
            self.stations.relay()
        except Exception:
            log.exception("relay of unpublished weighings failed; will retry")

    def require_loaded(self) -> None:
        if not self._loaded.is_set():
            raise NotReady(f"the weigh stations are not ready: {self._load_state}")

    def stop(self) -> None:
        """Stop the readers before closing the publisher."""
        self._stopping.set()
        if self._starter is not None:
            self._starter.join(timeout=15)
        for reader in (self.grader, self.projection, self.readings):
            if reader is None or (reader is self.grader and not self._grader_started.is_set()):
                continue
            # A reader the start-up thread never reached was not started and cannot be joined.
            with contextlib.suppress(RuntimeError):
                reader.stop()
        if self.broker is not None:
            self.broker.stop()
        for hook in self.on_stop:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)

    def health(self) -> Health:
        waiting: dict[str, str] = {}
        if not self._loaded.is_set():
            waiting["ledger"] = self._load_state
        if self.projection is not None and (state := not_ready(self.projection)):
            waiting["projection"] = state
        if self.grader is not None:
            if not self._grader_started.is_set():
                waiting["grader"] = "waiting for the projection to catch up"
            elif state := not_ready(self.grader):
                waiting["grader"] = state
        if self.readings is not None and self.readings.failure is not None:
            waiting["readings"] = f"failed: {self.readings.failure}"
        damage = self.stations.ledger.damage
        degraded = {"ledger": damage_report(damage)} if damage else {}
        unwritable = {} if self.broker is None else self.broker.degraded()
        return Health(waiting, degraded, damage, unwritable)
