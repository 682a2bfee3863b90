"""Why the yard refuses a decision: a small hierarchy the HTTP edge maps to status codes.

Every refusal says why in English (the message) and in Chinese (``message_zh``), because the
people at the gate and in the yard office read Chinese.
"""

from __future__ import annotations

from melon_contracts.units import g_to_kg


class DispatchError(Exception):
    """Base of every rule the yard enforces."""

    message_zh: str = "调度规则不允许"

    def __init__(self, message: str, message_zh: str | None = None) -> None:
        super().__init__(message)
        if message_zh is not None:
            self.message_zh = message_zh


class UnknownTruck(DispatchError):
    """No truck with this plate (or visit) is in the yard."""

    def __init__(self, plate: str) -> None:
        super().__init__(
            f"no truck {plate} in the yard; check it in at the gate first",
            f"场内没有车辆 {plate}，请先在大门登记",
        )
        self.plate = plate


class UnknownShipment(DispatchError):
    """No waiting shipment has this id."""

    def __init__(self, shipment_id: str) -> None:
        super().__init__(f"no waiting shipment {shipment_id}", f"没有待发货的货单 {shipment_id}")
        self.shipment_id = shipment_id


class UnknownTrade(DispatchError):
    """No trade with this id has reached dispatch."""

    def __init__(self, trade_id: str) -> None:
        super().__init__(f"no trade {trade_id}", f"没有成交 {trade_id}")
        self.trade_id = trade_id


class UnknownAssignment(DispatchError):
    """No assignment with this id."""

    def __init__(self, assignment_id: str) -> None:
        super().__init__(f"no assignment {assignment_id}", f"没有装车安排 {assignment_id}")
        self.assignment_id = assignment_id


class UnknownSuggestion(DispatchError):
    """The suggestion asked for is not the yard's current one."""

    def __init__(self, suggestion_id: str) -> None:
        super().__init__(
            f"suggestion {suggestion_id} is no longer current: the yard changed since; "
            "look at the new suggestion",
            f"装车建议 {suggestion_id} 已过期：场内情况有变，请查看新的建议",
        )
        self.suggestion_id = suggestion_id


class TruckAlreadyInYard(DispatchError):
    """A plate checked in twice: one truck is one place in the queue."""

    def __init__(self, plate: str) -> None:
        super().__init__(f"truck {plate} is already in the yard", f"车辆 {plate} 已在场内")
        self.plate = plate


class InvalidCapacity(DispatchError):
    """A truck's stated capacity cannot be loaded against."""

    message_zh = "载重无效"


class SetpointRequired(DispatchError):
    """A refrigerated truck checks in with the temperature its unit is set to."""

    def __init__(self) -> None:
        super().__init__(
            "a refrigerated truck needs its set-point (setpoint_c)", "冷藏车须填写冷机设定温度"
        )


class EmptyAssignment(DispatchError):
    """An assignment that names no shipment."""

    message_zh = "装车安排至少要有一个货单"


class ShipmentAlreadyAssigned(DispatchError):
    """A trade's goods go on one truck, once."""

    def __init__(
        self, what: str, plate: str, detail: str | None = None, what_zh: str | None = None
    ) -> None:
        super().__init__(
            detail or f"{what} is already assigned to truck {plate}",
            f"{what_zh or what} 已安排在车辆 {plate} 上",
        )
        self.what = what
        self.plate = plate


class OverCapacity(DispatchError):
    """The shipments weigh more than the truck has room for."""

    def __init__(self, plate: str, requested_g: int, remaining_g: int) -> None:
        super().__init__(
            f"truck {plate} has {g_to_kg(remaining_g)} kg of capacity left; "
            f"the shipments weigh {g_to_kg(requested_g)} kg",
            f"车辆 {plate} 剩余载重 {g_to_kg(remaining_g)} kg，"
            f"货物重 {g_to_kg(requested_g)} kg，超载",
        )
        self.plate = plate
        self.requested_g = requested_g
        self.remaining_g = remaining_g


class ColdChainRequired(DispatchError):
    """A buyer asked for cold chain, so the shipment may only go on a refrigerated truck."""

    def __init__(self, shipment_id: str, plate: str) -> None:
        super().__init__(
            f"shipment {shipment_id} needs cold chain but truck {plate} is not refrigerated",
            f"货单 {shipment_id} 需要冷链，车辆 {plate} 不是冷藏车",
        )
        self.shipment_id = shipment_id
        self.plate = plate


class SetpointOutOfRange(DispatchError):
    """A reefer set colder or warmer than honeydew travels at cannot carry cold-chain goods."""

    def __init__(self, plate: str, setpoint: str, low: str, high: str) -> None:
        super().__init__(
            f"truck {plate} is set to {setpoint} °C; cold-chain honeydew travels at "
            f"{low}-{high} °C, so reset the unit first",
            f"车辆 {plate} 冷机设定 {setpoint} °C，蜜瓜冷链要求 {low}–{high} °C，请先调整温度",
        )
        self.plate = plate


class DestinationNotServed(DispatchError):
    """The truck does not go where the shipment goes."""

    def __init__(self, plate: str, destination: str) -> None:
        super().__init__(
            f"truck {plate} does not go to {destination}",
            f"车辆 {plate} 不去 {destination}",
        )
        self.plate = plate
        self.destination = destination


class TruckDeparted(DispatchError):
    """Nothing changes on a truck that has left through the gate."""

    def __init__(self, plate: str) -> None:
        super().__init__(
            f"truck {plate} has departed; nothing on it can change",
            f"车辆 {plate} 已出场，不能再更改",
        )
        self.plate = plate


class TruckAlreadyLoaded(DispatchError):
    """A loaded truck's load is final: it was counted onto the truck and the note printed."""

    def __init__(self, plate: str) -> None:
        super().__init__(
            f"truck {plate} is loaded; its load can no longer change",
            f"车辆 {plate} 已装车完毕，装载内容不能再更改",
        )
        self.plate = plate


class InvalidTransition(DispatchError):
    """A truck moved out of order, e.g. departing before it was loaded."""

    def __init__(self, plate: str, current: str, wanted: str) -> None:
        super().__init__(
            f"truck {plate} is {current}; it cannot become {wanted} from there",
            f"车辆 {plate} 当前状态为 {_STATUS_ZH.get(current, current)}，"
            f"不能变为 {_STATUS_ZH.get(wanted, wanted)}",
        )
        self.plate = plate


class NothingToLoad(DispatchError):
    """A truck goes to a loading bay only with something assigned to it."""

    def __init__(self, plate: str) -> None:
        super().__init__(
            f"truck {plate} has no shipments assigned; assign some before sending it to a bay",
            f"车辆 {plate} 还没有安排货物，请先安排再进装车位",
        )
        self.plate = plate


class UnknownBay(DispatchError):
    """The yard has no loading bay with this number."""

    def __init__(self, bay: int, bays: int) -> None:
        super().__init__(
            f"there is no bay {bay}; the yard has bays 1 to {bays}",
            f"没有 {bay} 号装车位，场内装车位为 1–{bays} 号",
        )
        self.bay = bay


class BayOccupied(DispatchError):
    """One truck loads at a bay at a time."""

    def __init__(self, bay: int, plate: str) -> None:
        super().__init__(
            f"bay {bay} is taken by truck {plate}", f"{bay} 号装车位正被车辆 {plate} 占用"
        )
        self.bay = bay
        self.plate = plate


_STATUS_ZH = {
    "waiting": "等待",
    "assigned": "已配货",
    "loading": "装车中",
    "loaded": "已装完",
    "departed": "已出场",
}
