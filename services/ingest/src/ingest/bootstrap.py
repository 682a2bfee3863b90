"""The composition root: the only place that chooses adapters (Kafka or in-memory)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ingest.domain.grading import DEFAULT_PROFILE_ID, GradingProfile, load_profiles
from ingest.domain.scale import ScaleConfig
from ingest.domain.tare import DEFAULT_CRATE_TARES
from ingest.domain.weighhouse import StationKind
from ingest.entrypoints.consumers import Grader, Projection, ReadingsFeed
from ingest.ledger import kafka_source, memory_source
from ingest.runtime import IngestService
from ingest.service import StationSetup, WeighStations
from ingest.settings import Settings
from melon_contracts.codec import encode
from melon_contracts.health import BrokerWatch
from melon_contracts.topics import INGEST_LEDGER, LOTS_GRADED, LOTS_WEIGHED, SCALE_READINGS
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, TopicReader

GRADER_GROUP = "melon-ingest-grader"


def default_profile() -> GradingProfile:
    """The newest shipped version of the hall's default grading profile."""
    profiles = load_profiles()
    version = max(v for (pid, v) in profiles if pid == DEFAULT_PROFILE_ID)
    return profiles[(DEFAULT_PROFILE_ID, version)]


def station_setups(settings: Settings) -> list[StationSetup]:
    setups = []
    for station in settings.stations:
        division_g, max_g, min_g = station.resolved
        setups.append(
            StationSetup(
                station_id=station.id,
                kind=StationKind(station.kind),
                scale=ScaleConfig(
                    division_g=division_g,
                    max_g=max_g,
                    min_load_g=min_g,
                    motion_band_d=station.motion_band_d,
                    window_ms=station.window_ms,
                    stale_ms=station.stale_ms,
                ),
            )
        )
    return setups


def build(settings: Settings) -> IngestService:
    """The service wired to Kafka: the audit trail, its readers and the live readings feed."""
    publisher = KafkaPublisher("ingest", settings.bootstrap)
    stations = WeighStations(
        publisher,
        kafka_source(settings.bootstrap),
        station_setups(settings),
        DEFAULT_CRATE_TARES,
        default_profile(),
    )
    grader = TopicReader(
        "ingest",
        settings.bootstrap,
        [LOTS_WEIGHED],
        Grader(stations),
        group_id=GRADER_GROUP,
        dead_letters=publisher,
    )
    # No dead letters from the projection: the grader files what cannot be used of
    # lots.weighed, the matcher what cannot be used of lots.graded; a second reader filing the
    # same records would race the first.
    projection = TopicReader(
        "ingest", settings.bootstrap, [LOTS_WEIGHED, LOTS_GRADED], Projection(stations)
    )
    readings = TopicReader(
        "ingest",
        settings.bootstrap,
        [SCALE_READINGS],
        ReadingsFeed(stations),
        dead_letters=publisher,
        live=True,
    )
    return IngestService(
        stations=stations,
        projection=projection,
        grader=grader,
        readings=readings,
        broker=BrokerWatch(settings.bootstrap),
        on_stop=[publisher.close],
    )


class LoopbackPublisher(InMemoryPublisher):
    """An in-memory publisher whose ledger records are also readable as the ledger's log."""

    def __init__(self, unreachable: bool = False) -> None:
        super().__init__("ingest", unreachable=unreachable)
        self.log: list[bytes] = []

    def publish(self, spec, key, message):  # type: ignore[no-untyped-def]
        super().publish(spec, key, message)
        if spec.name == INGEST_LEDGER.name:
            self.log.append(encode(message))


def build_in_memory(
    settings: Settings | None = None,
    publisher: LoopbackPublisher | None = None,
    clock: Callable[[], float] = time.time,
) -> IngestService:
    """The service without a broker or readers, for unit tests; inspect ``publisher.sent``."""
    settings = settings if settings is not None else Settings()
    chosen = publisher if publisher is not None else LoopbackPublisher()
    stations = WeighStations(
        chosen,
        memory_source(chosen.log),
        station_setups(settings),
        DEFAULT_CRATE_TARES,
        default_profile(),
        clock=clock,
    )
    return IngestService(stations=stations)
