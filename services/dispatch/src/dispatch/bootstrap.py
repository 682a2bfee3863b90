"""The composition root: the only place that chooses adapters for the dispatch service."""

from __future__ import annotations

from dispatch.entrypoints.projection import make_handler
from dispatch.service import DispatchService
from dispatch.settings import Settings
from melon_contracts.topics import DISPATCH_ASSIGNMENTS, TRADES, TRUCKS_EVENTS
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, TopicReader

YARD_TOPICS = (TRADES, TRUCKS_EVENTS, DISPATCH_ASSIGNMENTS)


def build(settings: Settings) -> DispatchService:
    """The service on Kafka: it publishes to the broker and rebuilds its yard from the topics.

    The reader has no consumer group, so every instance reads every partition from the beginning
    and holds the whole yard.
    """
    publisher = KafkaPublisher("dispatch", settings.bootstrap)
    service = DispatchService(publisher)
    reader = TopicReader(
        "dispatch",
        settings.bootstrap,
        YARD_TOPICS,
        make_handler(service),
        dead_letters=publisher,
    )
    service.connect(reader, on_stop=publisher.close)
    return service


def build_in_memory() -> tuple[DispatchService, InMemoryPublisher]:
    """The service without a broker, for tests: no reader, and the publisher records events."""
    publisher = InMemoryPublisher("dispatch")
    return DispatchService(publisher), publisher
