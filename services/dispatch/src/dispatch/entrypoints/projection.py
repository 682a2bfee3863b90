"""The consumer handler: each decoded record from the yard's topics goes to the service."""

from __future__ import annotations

from dispatch.domain.errors import DispatchError
from dispatch.service import DispatchService
from melon_contracts.envelope import Message
from melon_contracts.events import ShipmentAssigned, TradeExecuted, TruckCheckedIn
from melon_contracts.topics import TopicSpec
from melon_contracts.transport import Handler


class RejectedRecord(ValueError):
    """A record the yard cannot use; a ValueError so the reader dead-letters it with the reason."""


def make_handler(service: DispatchService) -> Handler:
    def handle(spec: TopicSpec, key: str | None, message: Message) -> None:
        try:
            match message:
                case TradeExecuted():
                    service.record_trade(message)
                case TruckCheckedIn():
                    service.record_check_in(message)
                case ShipmentAssigned():
                    service.record_assignment(message)
                case _:
                    raise RejectedRecord(f"dispatch does not read {type(message).__name__}")
        except DispatchError as exc:
            raise RejectedRecord(str(exc)) from exc

    return handle
