"""Composition root of the pricing API: the only place its adapters are chosen."""

from __future__ import annotations

from dataclasses import dataclass, field

from melon_contracts.envelope import Message
from melon_contracts.events import BoardUpdated
from melon_contracts.topics import BOARD_UPDATES, TopicSpec
from melon_contracts.transport import InMemoryPublisher, KafkaPublisher, Publisher, TopicReader
from pricing.adapters.board_view import Board
from pricing.settings import Settings


@dataclass
class PricingApi:
    """What the HTTP layer needs: somewhere to send commands and the board it reads."""

    publisher: Publisher
    board: Board = field(default_factory=Board)
    readers: list[TopicReader] = field(default_factory=list)

    def on_board_update(self, spec: TopicSpec, key: str | None, message: Message) -> None:
        if isinstance(message, BoardUpdated):
            self.board.update(message)


def build(settings: Settings) -> PricingApi:
    publisher = KafkaPublisher("pricing", settings.bootstrap)
    api = PricingApi(publisher=publisher)
    api.readers.append(
        TopicReader(
            "pricing",
            settings.bootstrap,
            [BOARD_UPDATES],
            api.on_board_update,
            dead_letters=publisher,
        )
    )
    return api


def build_for_tests() -> PricingApi:
    return PricingApi(publisher=InMemoryPublisher("pricing"))
