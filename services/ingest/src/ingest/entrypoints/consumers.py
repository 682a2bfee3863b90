"""Thin Kafka handlers: the reader has decoded the record; hand it to the weigh stations.

A ``ValueError`` raised here (a wrong event type, a weighing the audit trail does not hold) makes
the reader send the record to the topic's dead-letter topic.
"""

from __future__ import annotations

from ingest.service import WeighStations
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded, LotWeighed, ScaleReading
from melon_contracts.topics import TopicSpec


class Grader:
    """Grades each lot weighed, once."""

    def __init__(self, stations: WeighStations) -> None:
        self._stations = stations

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if not isinstance(message, LotWeighed):
            raise ValueError(
                f"the grader takes LotWeighed, not {type(message).__name__} on {spec.name}"
            )
        self._stations.grade(message)


class Projection:
    """Folds lots.weighed and lots.graded into the read model."""

    def __init__(self, stations: WeighStations) -> None:
        self._stations = stations

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if not isinstance(message, LotWeighed | LotGraded):
            raise ValueError(
                f"the projection takes lot events, not {type(message).__name__} on {spec.name}"
            )
        self._stations.apply(message)


class ReadingsFeed:
    """Feeds live scale readings to the stations' stability detectors."""

    def __init__(self, stations: WeighStations) -> None:
        self._stations = stations

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if not isinstance(message, ScaleReading):
            raise ValueError(f"expected ScaleReading, not {type(message).__name__}")
        self._stations.observe(message)
