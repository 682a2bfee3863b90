"""The composition root: the only place that chooses adapters (Kafka or in-memory)."""

from __future__ import annotations

from ingest.domain.grading import SKELETON_PROFILE, GradingProfile
from ingest.entrypoints.consumers import Grader, Projection
from ingest.runtime import IngestService
from ingest.service import LotService
from ingest.settings import Settings
from melon_contracts.topics import LOTS_GRADED, LOTS_WEIGHED
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, Publisher, TopicReader

GRADER_GROUP = "melon-ingest-grader"


def build(settings: Settings, profile: GradingProfile = SKELETON_PROFILE) -> IngestService:
    """The service wired to Kafka: an acknowledging publisher, a grader and a projection."""
    publisher = KafkaPublisher("ingest", settings.bootstrap)
    lots = LotService(publisher, settings.stations, profile)
    grader = TopicReader(
        "ingest",
        settings.bootstrap,
        [LOTS_WEIGHED],
        Grader(lots),
        group_id=GRADER_GROUP,
        dead_letters=publisher,
    )
    # No dead letters from the projection: without a group it re-reads every topic from the
    # beginning on each start and would file the same rejects again each time. The grader
    # dead-letters lots.weighed once (it commits offsets) and pricing does so for lots.graded.
    projection = TopicReader(
        "ingest", settings.bootstrap, [LOTS_WEIGHED, LOTS_GRADED], Projection(lots)
    )
    return IngestService(lots=lots, projection=projection, grader=grader, on_stop=[publisher.close])


def build_in_memory(
    settings: Settings | None = None,
    publisher: InMemoryPublisher | None = None,
    profile: GradingProfile = SKELETON_PROFILE,
) -> IngestService:
    """The service without a broker or readers, for unit tests; inspect ``publisher.sent``."""
    settings = settings if settings is not None else Settings()
    chosen: Publisher = publisher if publisher is not None else InMemoryPublisher("ingest")
    return IngestService(lots=LotService(chosen, settings.stations, profile))
