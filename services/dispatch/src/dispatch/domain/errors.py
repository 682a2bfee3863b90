"""Why the yard refuses a request: a small hierarchy the HTTP edge maps to status codes."""

from __future__ import annotations

from melon_contracts.units import g_to_kg


class DispatchError(Exception):
    """Base of every rule the yard enforces."""


class UnknownTruck(DispatchError):
    """No truck with this plate has checked in."""

    def __init__(self, plate: str) -> None:
        super().__init__(f"no truck {plate} in the yard; check it in at the gate first")
        self.plate = plate


class UnknownShipment(DispatchError):
    """No trade produced a shipment with this id."""

    def __init__(self, shipment_id: str) -> None:
        super().__init__(f"no shipment {shipment_id}")
        self.shipment_id = shipment_id


class TruckAlreadyInYard(DispatchError):
    """A plate checked in twice: one truck is one place in the queue."""

    def __init__(self, plate: str) -> None:
        super().__init__(f"truck {plate} is already in the yard")
        self.plate = plate


class InvalidCapacity(DispatchError):
    """A truck's stated capacity cannot be loaded against."""


class EmptyAssignment(DispatchError):
    """An assignment that names no shipment."""


class ShipmentAlreadyAssigned(DispatchError):
    """A shipment goes on one truck, once."""

    def __init__(self, shipment_id: str, plate: str, detail: str | None = None) -> None:
        super().__init__(detail or f"shipment {shipment_id} is already assigned to truck {plate}")
        self.shipment_id = shipment_id
        self.plate = plate


class OverCapacity(DispatchError):
    """The shipments weigh more than the truck has room for."""

    def __init__(self, plate: str, requested_g: int, remaining_g: int) -> None:
        super().__init__(
            f"truck {plate} has {g_to_kg(remaining_g)} kg of capacity left; "
            f"the shipments weigh {g_to_kg(requested_g)} kg"
        )
        self.plate = plate
        self.requested_g = requested_g
        self.remaining_g = remaining_g


class ColdChainRequired(DispatchError):
    """A buyer asked for cold chain, so the shipment may only go on a refrigerated truck."""

    def __init__(self, shipment_id: str, plate: str) -> None:
        super().__init__(
            f"shipment {shipment_id} needs cold chain but truck {plate} is not refrigerated"
        )
        self.shipment_id = shipment_id
        self.plate = plate
