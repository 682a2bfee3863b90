"""The composition root: the only place that chooses adapters for the dispatch service."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.adapters.optimiser import optimise
from dispatch.domain import loads
from dispatch.entrypoints.projection import make_handler
from dispatch.service import DispatchService, Planner
from dispatch.settings import Settings
from melon_contracts.envelope import Message
from melon_contracts.health import BrokerWatch
from melon_contracts.topics import DISPATCH_YARD, TRADES, TopicSpec
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, TopicReader

YARD_TOPICS = (TRADES, DISPATCH_YARD)
OPTIMISER = "cp-sat"
GREEDY = "first-fit-decreasing"


def cp_sat(time_limit_s: float, workers: int) -> Planner:
    def plan(
        shipments: Sequence[loads.Shipment], trucks: Sequence[loads.Truck], now_s: int
    ) -> loads.Plan:
        return optimise(shipments, trucks, time_limit_s=time_limit_s, now_s=now_s, workers=workers)

    return plan


def greedy(
    shipments: Sequence[loads.Shipment], trucks: Sequence[loads.Truck], now_s: int
) -> loads.Plan:
    return loads.first_fit_decreasing(shipments, trucks, now_s)


def build(settings: Settings) -> DispatchService:
    """The service on Kafka: it publishes to the broker and rebuilds its yard from the topics.

    The reader has no consumer group, so every instance reads every partition from the beginning
    and holds the whole yard; it also reads back this instance's own decisions, which is how a
    request learns whether its decision stood.
    """
    publisher = KafkaPublisher("dispatch", settings.bootstrap)
    service = DispatchService(
        publisher,
        bays=settings.bays,
        planner=cp_sat(settings.plan_time_limit_s, settings.plan_workers),
        solver=OPTIMISER,
    )
    reader = TopicReader(
        "dispatch",
        settings.bootstrap,
        YARD_TOPICS,
        make_handler(service),
        dead_letters=publisher,
    )
    service.connect(reader, on_stop=publisher.close, broker=BrokerWatch(settings.bootstrap))
    return service


class Loopback:
    """The in-memory publisher with the yard's log read straight back, as the reader would."""

    def __init__(self, publisher: InMemoryPublisher) -> None:
        self.inner = publisher
        self.service: DispatchService | None = None

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        self.inner.publish(spec, key, message)
        if spec is DISPATCH_YARD and self.service is not None:
            self.service.record_yard(message)


def build_in_memory(
    bays: int = 6, planner: Planner = greedy, solver: str = GREEDY, auto_suggest: bool = False
) -> tuple[DispatchService, InMemoryPublisher]:
    """The service without a broker, for tests: the publisher records events and folds decisions."""
    recorder = InMemoryPublisher("dispatch")
    loopback = Loopback(recorder)
    service = DispatchService(
        loopback, bays=bays, planner=planner, solver=solver, auto_suggest=auto_suggest
    )
    loopback.service = service
    return service, recorder
