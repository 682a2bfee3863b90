"""The HTTP API's request and response bodies; weights are grams, and also kg as exact strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dispatch.domain.yard import ShipmentState, ShipmentStatus, TruckLoad
from melon_contracts.reference import Identifier, Plate
from melon_contracts.units import g_to_kg

ShipmentId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


def _kg(grams: int) -> str:
    return str(g_to_kg(grams))


class CheckInTruckBody(BaseModel):
    """Gate check-in of a truck."""

    model_config = ConfigDict(extra="forbid")

    plate: Plate = Field(examples=["甘H12345"])
    driver: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = ""
    capacity_kg: Decimal = Field(description="What the truck may carry, in kg", examples=["12000"])
    refrigerated: bool
    checked_in_by: Identifier


class AssignShipmentsBody(BaseModel):
    """Put shipments on a truck, all of them or none."""

    model_config = ConfigDict(extra="forbid")

    plate: Plate
    shipment_ids: list[ShipmentId] = Field(min_length=1, max_length=1000)
    assigned_by: Identifier


class TruckOut(BaseModel):
    """A truck in the yard and its load."""

    plate: str
    driver: str
    phone: str
    refrigerated: bool
    checked_in_by: str
    checked_in_at: datetime
    capacity_g: int
    capacity_kg: str
    loaded_g: int
    loaded_kg: str
    remaining_g: int
    remaining_kg: str
    shipment_ids: list[str]

    @classmethod
    def of(cls, load: TruckLoad) -> TruckOut:
        truck = load.truck
        return cls(
            plate=truck.plate,
            driver=truck.driver,
            phone=truck.phone,
            refrigerated=truck.refrigerated,
            checked_in_by=truck.checked_in_by,
            checked_in_at=truck.checked_in_at,
            capacity_g=truck.capacity_g,
            capacity_kg=_kg(truck.capacity_g),
            loaded_g=load.loaded_g,
            loaded_kg=_kg(load.loaded_g),
            remaining_g=load.remaining_g,
            remaining_kg=_kg(load.remaining_g),
            shipment_ids=list(load.shipment_ids),
        )


class ShipmentOut(BaseModel):
    """A shipment: the goods of one trade, and its truck once assigned."""

    shipment_id: str
    trade_id: str
    lot_id: str
    farmer_id: str
    merchant_id: str
    variety: str
    grade: str
    crates: int
    weight_g: int
    weight_kg: str
    destination: str
    cold_chain: bool
    traded_at: datetime
    status: ShipmentStatus
    plate: str | None
    assigned_by: str | None
    assigned_at: datetime | None

    @classmethod
    def of(cls, state: ShipmentState) -> ShipmentOut:
        shipment, assignment = state.shipment, state.assignment
        return cls(
            shipment_id=shipment.shipment_id,
            trade_id=shipment.shipment_id,
            lot_id=shipment.lot_id,
            farmer_id=shipment.farmer_id,
            merchant_id=shipment.merchant_id,
            variety=shipment.variety,
            grade=shipment.grade,
            crates=shipment.crates,
            weight_g=shipment.weight_g,
            weight_kg=_kg(shipment.weight_g),
            destination=shipment.destination,
            cold_chain=shipment.cold_chain,
            traded_at=shipment.traded_at,
            status=state.status,
            plate=None if assignment is None else assignment.plate,
            assigned_by=None if assignment is None else assignment.assigned_by,
            assigned_at=None if assignment is None else assignment.assigned_at,
        )


class AssignmentOut(BaseModel):
    """The truck after the assignment, and the shipments now on it."""

    truck: TruckOut
    shipments: list[ShipmentOut]


class Health(BaseModel):
    status: str
