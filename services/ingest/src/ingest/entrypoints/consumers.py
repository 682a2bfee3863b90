"""Thin Kafka handlers: the reader has decoded the record; build a command, hand it on.

A ``ValueError`` raised here (a wrong event type, a conflicting weighing) makes the reader send
the record to the topic's dead-letter topic.
"""

from __future__ import annotations

from ingest import messages
from ingest.service import LotService
from melon_contracts.envelope import Message
from melon_contracts.events import LotGraded, LotWeighed
from melon_contracts.topics import TopicSpec


class Grader:
    """Grades each lot weighed, once."""

    def __init__(self, lots: LotService) -> None:
        self._lots = lots

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if not isinstance(message, LotWeighed):
            raise ValueError(
                f"the grader takes LotWeighed, not {type(message).__name__} on {spec.name}"
            )
        self._lots.grade(messages.grade_lot(message))


class Projection:
    """Folds lots.weighed and lots.graded into the read model."""

    def __init__(self, lots: LotService) -> None:
        self._lots = lots

    def __call__(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if not isinstance(message, LotWeighed | LotGraded):
            raise ValueError(
                f"the projection takes lot events, not {type(message).__name__} on {spec.name}"
            )
        self._lots.apply(message)
