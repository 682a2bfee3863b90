"""The consumer handler: each decoded record from the yard's topics goes to the service."""

from __future__ import annotations

from dispatch.service import DispatchService
from melon_contracts.envelope import Message
from melon_contracts.events import TradeExecuted
from melon_contracts.topics import DISPATCH_YARD, TopicSpec
from melon_contracts.transport import Handler


class RejectedRecord(ValueError):
    """A record the yard cannot use; a ValueError so the reader dead-letters it with the reason."""


def make_handler(service: DispatchService) -> Handler:
    def handle(spec: TopicSpec, key: str | None, message: Message) -> None:
        if spec.name == DISPATCH_YARD.name:
            # A decision that does not stand is still a fact of the log, folded and counted,
            # never dead-lettered: every instance must fold the same records.
            service.record_yard(message)
        elif isinstance(message, TradeExecuted):
            service.record_trade(message)
        else:
            raise RejectedRecord(f"dispatch does not read {type(message).__name__}")

    return handle
