"""Use cases, consumers and reader lifecycle, with the in-memory publisher and fake readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ingest.bootstrap import build_in_memory
from ingest.domain.commands import RecordLot
from ingest.domain.errors import LotAlreadyWeighed
from ingest.domain.grading import SKELETON_PROFILE
from ingest.domain.lots import Applied, LotStatus
from ingest.entrypoints.consumers import Grader, Projection
from ingest.runtime import IngestService
from ingest.service import LotService
from melon_contracts.codec import decode, encode
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded, LotWeighed, TruckCheckedIn
from melon_contracts.reference import Grade
from melon_contracts.topics import LOTS_GRADED, LOTS_WEIGHED, TopicSpec
from melon_contracts.transport import InMemoryPublisher, PublishFailed

STATIONS = ("ws-1", "ws-2")


def entry(lot_id: str = "L-001", crates: int = 40) -> RecordLot:
    return RecordLot(
        lot_id=lot_id,
        station_id="ws-1",
        farmer_id="F-7",
        variety="xizhoumi",
        crates=crates,
        net_kg="512.5",
        brix=(13.0, 13.4),
        operator_id="op-3",
    )


def new_service() -> tuple[LotService, InMemoryPublisher]:
    publisher = InMemoryPublisher("ingest")
    return LotService(publisher, STATIONS, SKELETON_PROFILE), publisher


def weighed(publisher: InMemoryPublisher) -> list[LotWeighed]:
    return [m for m in publisher.on(LOTS_WEIGHED) if isinstance(m, LotWeighed)]


def graded(publisher: InMemoryPublisher) -> list[LotGraded]:
    return [m for m in publisher.on(LOTS_GRADED) if isinstance(m, LotGraded)]


def test_recorded_lot_is_published_keyed_by_lot_and_readable_at_once() -> None:
    # Given a fresh service
    lots, publisher = new_service()
    # When an operator records a lot
    recorded = lots.record(entry())
    # Then one LotWeighed went out keyed and correlated by the lot id, in grams
    assert recorded.created
    ((topic, key, event),) = publisher.sent
    assert (topic, key) == ("lots.weighed", "L-001")
    assert isinstance(event, LotWeighed)
    assert (event.correlation_id, event.net_g, event.brix) == ("L-001", 512_500, (13.0, 13.4))
    # And the operator reads their own write before any reader has seen it
    assert lots.lot("L-001").event_id == event.event_id
    assert lots.lot("L-001").status is LotStatus.WEIGHED


def test_repeated_identical_entry_publishes_nothing_more() -> None:
    lots, publisher = new_service()
    first = lots.record(entry())
    again = lots.record(entry())
    assert (again.created, again.lot) == (False, first.lot)
    assert len(publisher.sent) == 1


def test_entry_conflicting_with_recorded_lot_is_refused_and_not_published() -> None:
    lots, publisher = new_service()
    lots.record(entry())
    with pytest.raises(LotAlreadyWeighed):
        lots.record(entry(crates=41))
    assert len(publisher.sent) == 1


class RacingPublisher:
    """A broker on which another instance's event arrives while this one publishes."""

    def __init__(self, arriving: LotWeighed) -> None:
        self.arriving = arriving
        self.lots: LotService | None = None

    def publish(self, spec: TopicSpec, key: str, message: Message) -> None:
        assert self.lots is not None
        self.lots.apply(self.arriving)


def test_weighing_that_loses_a_race_with_another_instance_is_a_conflict() -> None:
    # Given another instance's weighing of the same lot id, read from the topic mid-publish
    other, other_publisher = new_service()
    other.record(entry(crates=41))
    racing = RacingPublisher(weighed(other_publisher)[0])
    lots = racing.lots = LotService(racing, STATIONS, SKELETON_PROFILE)
    # When this instance records its own weighing, Then it is told the other one stands
    with pytest.raises(LotAlreadyWeighed, match="that weighing stands"):
        lots.record(entry())
    assert lots.lot("L-001").weighing.crates == 41


def test_lot_the_broker_did_not_acknowledge_is_not_recorded() -> None:
    # Given a broker that does not acknowledge
    lots = LotService(InMemoryPublisher("ingest", unreachable=True), STATIONS, SKELETON_PROFILE)
    # When an operator records a lot, Then they are told, and the lot is not in the read model
    with pytest.raises(PublishFailed, match="LotWeighed for L-001 was not acknowledged"):
        lots.record(entry())
    assert lots.lots(10) == []


def test_grader_grades_each_weighed_lot_once() -> None:
    # Given a recorded lot whose LotWeighed the grader receives twice (at-least-once)
    lots, publisher = new_service()
    lots.record(entry())
    grader = Grader(lots)
    (event,) = weighed(publisher)
    # When the grader handles both deliveries
    grader(LOTS_WEIGHED, "L-001", event)
    grader(LOTS_WEIGHED, "L-001", event)
    # Then exactly one LotGraded went out, keyed and correlated by lot id
    (grade,) = graded(publisher)
    assert publisher.sent[-1][:2] == ("lots.graded", "L-001")
    assert (grade.correlation_id, grade.grade, grade.net_g) == ("L-001", Grade.CLASS_I, 512_500)
    assert grade.reason == "mean Brix 13.2 over 2 fruits; 一级 needs ≥ 12.0, 特级 needs ≥ 14.0"
    # And the lot reads as graded
    assert lots.lot("L-001").status is LotStatus.GRADED


def test_grader_grades_a_lot_weighed_by_another_instance() -> None:
    # Given a LotWeighed this instance did not record
    elsewhere, elsewhere_publisher = new_service()
    elsewhere.record(entry())
    lots, publisher = new_service()
    # When the grader receives it
    Grader(lots)(LOTS_WEIGHED, "L-001", weighed(elsewhere_publisher)[0])
    # Then the lot is known here and graded
    assert lots.lot("L-001").status is LotStatus.GRADED
    assert len(graded(publisher)) == 1


def test_grader_refuses_a_second_weighing_with_other_content_so_it_is_dead_lettered() -> None:
    # Given a graded lot, and another instance's conflicting weighing of the same lot id
    lots, publisher = new_service()
    lots.record(entry())
    Grader(lots)(LOTS_WEIGHED, "L-001", weighed(publisher)[0])
    other, other_publisher = new_service()
    other.record(entry(crates=41))
    # When the grader receives the conflicting weighing
    # Then it raises a ValueError (the reader's cue to dead-letter) and grades nothing more
    with pytest.raises(LotAlreadyWeighed, match="weighs it again with different content"):
        Grader(lots)(LOTS_WEIGHED, "L-001", weighed(other_publisher)[0])
    assert len(graded(publisher)) == 1


@pytest.mark.parametrize(
    ("handler", "spec"),
    [(Grader, LOTS_WEIGHED), (Projection, LOTS_GRADED)],
    ids=["grader", "projection"],
)
def test_consumer_refuses_an_event_it_does_not_handle(
    handler: Callable[[LotService], Callable[[TopicSpec, str | None, Message], None]],
    spec: TopicSpec,
) -> None:
    lots, _ = new_service()
    truck = TruckCheckedIn(
        correlation_id="甘H12345",
        plate="甘H12345",
        driver="Ma",
        capacity_g=30_000_000,
        refrigerated=True,
        checked_in_by="gate-1",
    )
    with pytest.raises(ValueError, match="not TruckCheckedIn"):
        handler(lots)(spec, "x", truck)


def test_projection_rebuilds_the_read_model_from_the_topics_after_a_restart() -> None:
    # Given the events one instance published for two lots, one of them graded
    before, publisher = new_service()
    before.record(entry("L-001"))
    before.record(entry("L-002"))
    Grader(before)(LOTS_WEIGHED, "L-001", weighed(publisher)[0])
    # When a restarted instance replays both topics' bytes twice over, grades first
    after, after_publisher = new_service()
    projection = Projection(after)
    replay = graded(publisher) + weighed(publisher)
    for event in replay + replay:
        spec = LOTS_GRADED if isinstance(event, LotGraded) else LOTS_WEIGHED
        projection(spec, event.lot_id, decode(spec, encode(event)))
    # Then it knows what the first instance knew, and published nothing itself
    assert [(lot.lot_id, lot.status) for lot in after.lots(10)] == [
        (lot.lot_id, lot.status) for lot in before.lots(10)
    ]
    assert after.lot("L-001").grading == before.lot("L-001").grading
    assert after_publisher.sent == []


def test_projection_keeps_the_first_weighing_of_a_lot() -> None:
    lots, _ = new_service()
    lots.record(entry())
    other, other_publisher = new_service()
    other.record(entry(crates=41))
    assert lots.apply(weighed(other_publisher)[0]) is Applied.CONFLICT
    assert lots.lot("L-001").weighing.crates == 40


class FakeReader:
    """Stands in for a TopicReader: the test decides when it has caught up or failed."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.failure: BaseException | None = None
        self.started = threading.Event()
        self.stopped = False

    def start(self) -> None:
        self.started.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopped = True


def service_with_readers() -> tuple[IngestService, FakeReader, FakeReader, list[str]]:
    projection, grader, closed = FakeReader(), FakeReader(), []
    service = build_in_memory()
    service.projection, service.grader = projection, grader
    service.on_stop.append(lambda: closed.append("publisher"))
    return service, projection, grader, closed


def wait_until(condition: Callable[[], bool], deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


def test_grader_starts_only_once_the_projection_has_caught_up() -> None:
    # Given a started service whose projection is still reading the topics
    service, projection, grader, _ = service_with_readers()
    service.start()
    try:
        assert projection.started.is_set()
        assert service.health().not_ready == {
            "projection": "catching up with the topics",
            "grader": "waiting for the projection to catch up",
        }
        assert not grader.started.is_set()
        # When the projection catches up
        projection.caught_up.set()
        # Then the grader starts, and the service is healthy once the grader is ready too
        wait_until(grader.started.is_set)
        wait_until(lambda: "grader" in service.health().not_ready)
        assert service.health().not_ready == {"grader": "catching up with the topics"}
        grader.caught_up.set()
        assert service.health().ok
    finally:
        service.stop()


def test_failed_reader_makes_the_service_unhealthy() -> None:
    service, projection, grader, _ = service_with_readers()
    service.start()
    try:
        projection.failure = RuntimeError("broker gone")
        assert service.health().not_ready["projection"] == "failed: RuntimeError: broker gone"
    finally:
        service.stop()
    assert not grader.started.is_set()


def test_stop_stops_readers_then_closes_the_publisher() -> None:
    service, projection, grader, closed = service_with_readers()
    service.start()
    projection.caught_up.set()
    wait_until(grader.started.is_set)
    service.stop()
    assert (grader.stopped, projection.stopped, closed) == (True, True, ["publisher"])


def test_service_without_readers_is_healthy() -> None:
    assert build_in_memory().health().ok
