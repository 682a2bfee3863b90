"""The soak's clients: the hall's users, who retry what failed and note what was acknowledged.

Every client keeps the same rules:

- Each request has a timeout. No answer (a refused connection, a reset, a timeout) and a 5xx are
  not acknowledgements: the same request goes again after a growing pause, until the operation's
  deadline.
- The same request carries the same ids, so sending it again cannot do the thing twice: a
  weighing again with its lot tag (the tag of a recorded lot returns its ticket with 200), a bid
  with its bid id (a book takes an id once), an amendment with its new price only (applied twice
  it changes nothing, where a new quantity would refill a bid that filled in between), a cancel,
  a check-in with its plate, an assignment with its trades.
- Only a 2xx is written down as acknowledged, with the ids the answer names. A refusal that
  follows a try whose answer was lost (a truck "already in the yard" after a check-in that timed
  out) is *ambiguous*: the first try may have been recorded. It is written down as that, never as
  acknowledged, and the invariants hold the hall only to what was acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from melon_contracts.units import fen_to_yuan
from melon_devkit.demo import demo_token
from melon_devkit.simday.plan import Bid, Lot, Truck
from melon_devkit.simday.runner import Urls

HTTP_TIMEOUT_S = 20.0
"""Per request: dispatch answers a decision once its own event came back through the yard's log
(up to 15 s), which takes longer while the broker is away."""
FIRST_PAUSE_S = 0.25
LONGEST_PAUSE_S = 2.0
SCALE_PASSING = frozenset({"unstable", "offline", "zero_drift", "station_busy"})
"""Scale refusals that pass once the load settles or the readings flow again (after the gateway
or ingest was restarted)."""
NOT_REPORTED_YET = "has not reached its book yet"
"""The pricing API's refusal of a change to a bid the matcher has not reported: try again."""
YARD_EVERY_S = 3.0
LEAVE_AT_FILL = 0.5
YARD_BY = "yard-1"
DESK_BY = "yard-2"
GATE_BY = "gate-1"

KINDS = ("weighing", "bid", "amend", "cancel", "check_in", "assignment", "move")
"""The operations whose acknowledgements the invariants hold the hall to."""


@dataclass(frozen=True)
class WeighingAck:
    lot_id: str
    station_id: str
    ticket_no: int
    net_g: int
    crates: int
    repeated: bool
    """The answer was the existing ticket (200): an earlier try had been recorded."""


@dataclass(frozen=True)
class BidAck:
    bid_id: str
    merchant_id: str
    book: str
    price_fen_per_kg: int
    quantity_g: int


@dataclass(frozen=True)
class AmendAck:
    bid_id: str
    price_fen_per_kg: int


@dataclass(frozen=True)
class CheckInAck:
    plate: str
    visit_id: str


@dataclass(frozen=True)
class AssignmentAck:
    assignment_id: str
    plate: str
    visit_id: str
    trade_ids: tuple[str, ...]
    via: str
    """``suggestion`` (accepted) or ``desk`` (``POST /assignments``)."""


@dataclass(frozen=True)
class MoveAck:
    plate: str
    visit_id: str
    status: str


@dataclass
class Acks:
    """What the clients were told, shared between their threads under ``lock``."""

    weighings: dict[str, WeighingAck] = field(default_factory=dict)
    bids: dict[str, BidAck] = field(default_factory=dict)
    amends: list[AmendAck] = field(default_factory=list)
    cancels: set[str] = field(default_factory=set)
    check_ins: dict[str, CheckInAck] = field(default_factory=dict)
    assignments: dict[str, AssignmentAck] = field(default_factory=dict)
    moves: list[MoveAck] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    """``kind code`` -> how many operations ended refused."""
    gave_up: Counter[str] = field(default_factory=Counter)
    """Operations that got no definite answer before their deadline."""
    ambiguous: list[str] = field(default_factory=list)
    sent_again: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    """``kind status`` -> 5xx answers; 503 is an outage said out loud, 500 would be a bug."""
    acked_at: list[float] = field(default_factory=list)
    """Monotonic moments of every acknowledged write, to time the first after a broker restart."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acknowledged(self) -> dict[str, int]:
        with self.lock:
            return {
                "weighing": len(self.weighings),
                "bid": len(self.bids),
                "amend": len(self.amends),
                "cancel": len(self.cancels),
                "check_in": len(self.check_ins),
                "assignment": len(self.assignments),
                "move": len(self.moves),
            }


@dataclass(frozen=True)
class Answer:
    """The last answer to an operation's request, and how its tries went."""

    status: int
    """0: no answer at all."""
    code: str
    """The hall's error code of a refusal; empty for a 2xx or no answer."""
    detail: str
    body: Any
    attempts: int
    unanswered: int
    """Tries whose outcome the client cannot know: no answer, or a 5xx."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return 400 <= self.status < 500


class Door:
    """One client's way into the hall: one HTTP connection pool, requests retried as above."""

    def __init__(
        self,
        acks: Acks,
        stop: threading.Event,
        op_timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.acks = acks
        self.stop = stop
        self.op_timeout_s = op_timeout_s
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S, transport=transport)

    def close(self) -> None:
        self.http.close()

    def ask(
        self,
        kind: str,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        again: Callable[[Answer], bool] | None = None,
    ) -> Answer:
        """Send until a 2xx or a refusal that ``again`` does not call passing, or the deadline."""
        deadline = time.monotonic() + self.op_timeout_s
        attempts = unanswered = 0
        pause = FIRST_PAUSE_S
        while True:
            attempts += 1
            status, code, detail, answer_body = self._once(method, url, body, headers)
            if status == 0 or status >= 500:
                unanswered += 1
                if status:
                    with self.acks.lock:
                        self.acks.server_errors[f"{kind} {status}"] += 1
            answer = Answer(status, code, detail, answer_body, attempts, unanswered)
            if answer.ok:
                return answer
            passing = status == 0 or status >= 500 or (again is not None and again(answer))
            if not passing or self.stop.is_set() or time.monotonic() + pause > deadline:
                return answer
            time.sleep(pause)
            pause = min(LONGEST_PAUSE_S, pause * 1.5)

    def _once(
        self, method: str, url: str, body: Any, headers: dict[str, str] | None
    ) -> tuple[int, str, str, Any]:
        try:
            response = self.http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return 0, "", f"{type(exc).__name__}: {exc}", None
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        code = detail = ""
        if not response.is_success:
            if isinstance(parsed, dict):
                code = str(parsed.get("error") or "")
                detail = str(parsed.get("detail") or "")
            code = code or f"http_{response.status_code}"
            detail = detail or response.text[:200]
        return response.status_code, code, detail, parsed

    def read(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """A GET's body, retried like any request; None if the hall did not answer it."""
        answer = self.ask("read", "GET", url, headers=headers)
        return answer.body if answer.ok else None


@dataclass
class Day:
    """What the clients share: where the hall is, what they were told, the clock and the stop."""

    urls: Urls
    acks: Acks
    began: float
    op_timeout_s: float
    harvest_date: date
    expires_at: str
    """Every bid's expiry, well past the run: the hall's default (midnight in Minqin) could fall
    inside it."""
    say: Callable[[str], None]
    plates: frozenset[str]
    stop: threading.Event = field(default_factory=threading.Event)
    supply_done: threading.Event = field(default_factory=threading.Event)
    """Set once the stations, the merchants and the gate are through their parts of the day."""
    completed: bool = True
    """False once the run's deadline stopped the clients before they were through."""
    leave_after_s: float = 60.0
    """A truck with goods on it for this long goes to a bay, however full."""
    transport: httpx.BaseTransport | None = None
    """For tests: the clients' HTTP transport instead of the network."""

    @contextmanager
    def door(self) -> Iterator[Door]:
        door = Door(self.acks, self.stop, self.op_timeout_s, self.transport)
        try:
            yield door
        finally:
            door.close()

    def wait_until(self, at_s: float) -> bool:
        """Sleep until ``at_s`` after the start; False if the run was stopped meanwhile."""
        left = self.began + at_s - time.monotonic()
        if left > 0:
            self.stop.wait(left)
        return not self.stop.is_set()

    def note(self, kind: str, answer: Answer, what: str, ack: Callable[[Any], None]) -> None:
        """Write down how an operation ended: acknowledged (``ack`` records the answer's ids),
        refused, ambiguous or given up."""
        with self.acks.lock:
            self.acks.sent_again[kind] += answer.attempts - 1
            if answer.ok:
                ack(answer.body)
                self.acks.acked_at.append(time.monotonic())
            elif answer.refused and answer.unanswered:
                self.acks.ambiguous.append(
                    f"{kind} {what}: {answer.status} {answer.code} after {answer.unanswered} "
                    "unanswered try/tries (may have been recorded)"
                )
            elif answer.refused:
                self.acks.refused[f"{kind} {answer.code}"] += 1
            else:
                self.acks.gave_up[kind] += 1
        if not answer.ok and not answer.refused:
            self.say(f"gave up on {kind} {what} after {answer.attempts} tries: {answer.detail}")


def auth(account_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_token(account_id)}"}


# -- weigh stations ----------------------------------------------------------------------------


def station(day: Day, lots: Sequence[tuple[float, Lot]]) -> None:
    """A platform scale's operator: each lot at its moment, loaded, weighed, unloaded."""
    with day.door() as door:
        for at_s, lot in lots:
            if not day.wait_until(at_s):
                return
            weigh(day, door, lot)


def weigh(day: Day, door: Door, lot: Lot) -> None:
    urls, where = day.urls, lot.station
    load = f"{urls.scales}/scales/{where}/load"
    unload = f"{urls.scales}/scales/{where}/unload"
    door.ask("scale", "POST", load, {"kg": lot.gross_kg})
    try:
        # The operator waits for the stable light (or a load the scale shows as already taken:
        # the lot was recorded by a try whose answer was lost).
        scale_until(day, door, where, lambda view: bool(view["stable"] or view["taken"]), 30)

        def again(answer: Answer) -> bool:
            if answer.status != 409:
                return False
            if answer.code in SCALE_PASSING:
                scale_until(day, door, where, lambda v: bool(v["stable"] or v["taken"]), 15)
                return True
            if answer.code == "not_returned_to_zero":
                door.ask("scale", "POST", unload)
                scale_until(day, door, where, lambda view: view["status"] == "empty", 30)
                door.ask("scale", "POST", load, {"kg": lot.gross_kg})
                scale_until(day, door, where, lambda view: bool(view["stable"]), 30)
                return True
            return False

        answer = door.ask(
            "weighing",
            "POST",
            f"{urls.ingest}/stations/{where}/weighings",
            lot.weighing_body(day.harvest_date),
            again=again,
        )

        def ack(ticket: Any) -> None:
            day.acks.weighings[lot.lot_id] = WeighingAck(
                lot_id=ticket["lot_id"],
                station_id=ticket["station_id"],
                ticket_no=ticket["ticket_no"],
                net_g=ticket["net_g"],
                crates=ticket["crates"],
                repeated=bool(ticket["repeated"]),
            )

        day.note("weighing", answer, lot.lot_id, ack)
    finally:
        door.ask("scale", "POST", unload)
        if not scale_until(day, door, where, lambda view: view["status"] == "empty", 60):
            day.say(f"{where} did not show empty after {lot.lot_id} was unloaded")


def scale_until(
    day: Day, door: Door, where: str, wanted: Callable[[dict[str, Any]], bool], timeout_s: float
) -> bool:
    """Poll the station's scale as ingest shows it until ``wanted``; False at the timeout."""
    deadline = time.monotonic() + timeout_s
    url = f"{day.urls.ingest}/stations/{where}/scale"
    while time.monotonic() < deadline and not day.stop.is_set():
        try:
            response = door.http.get(url, timeout=5)
            if response.status_code == 200 and wanted(response.json()):
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


# -- merchants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deal:
    """One thing a merchant does at a moment: place a bid, amend its price, or cancel it."""

    at_s: float
    action: str
    bid: Bid
    price_fen_per_kg: int | None = None


def merchants(day: Day, deals: Sequence[Deal]) -> None:
    """The trading floor: every deal at its moment, by the merchant whose bid it is."""
    with day.door() as door:
        for deal in sorted(deals, key=lambda d: (d.at_s, d.action != "place", d.bid.bid_id)):
            if not day.wait_until(deal.at_s):
                return
            if deal.action == "place":
                place(day, door, deal.bid)
            elif deal.bid.bid_id in day.acks.bids:
                change(day, door, deal)


def place(day: Day, door: Door, bid: Bid) -> None:
    body = {**bid.body(), "expires_at": day.expires_at}
    answer = door.ask(
        "bid", "POST", f"{day.urls.pricing}/bids", body, headers=auth(bid.merchant_id)
    )

    def ack(reply: Any) -> None:
        day.acks.bids[bid.bid_id] = BidAck(
            bid.bid_id, bid.merchant_id, reply["book"], bid.price_fen_per_kg, bid.quantity_g
        )

    day.note("bid", answer, bid.bid_id, ack)


def _not_reported_yet(answer: Answer) -> bool:
    """A change to a bid the API has not seen reported yet (or, just restarted, not read back
    yet): it passes once the matcher's report is in."""
    passing = (answer.status == 409 and NOT_REPORTED_YET in answer.detail) or (
        answer.status == 404 and answer.code == "unknown_bid"
    )
    if passing:
        time.sleep(0.5)
    return passing


def change(day: Day, door: Door, deal: Deal) -> None:
    bid = deal.bid
    base = f"{day.urls.pricing}/bids/{bid.bid_id}"
    if deal.action == "amend" and deal.price_fen_per_kg is not None:
        price = deal.price_fen_per_kg
        answer = door.ask(
            "amend",
            "PATCH",
            base,
            {"price_yuan_per_kg": str(fen_to_yuan(price))},
            headers=auth(bid.merchant_id),
            again=_not_reported_yet,
        )
        day.note(
            "amend",
            answer,
            bid.bid_id,
            lambda _: day.acks.amends.append(AmendAck(bid.bid_id, price)),
        )
        return
    answer = door.ask(
        "cancel",
        "POST",
        f"{base}/cancel",
        headers=auth(bid.merchant_id),
        again=_not_reported_yet,
    )
    day.note("cancel", answer, bid.bid_id, lambda _: day.acks.cancels.add(bid.bid_id))


# -- the gate and the yard office --------------------------------------------------------------


def gate(day: Day, trucks: Sequence[tuple[float, Truck]]) -> None:
    with day.door() as door:
        for at_s, truck in trucks:
            if not day.wait_until(at_s):
                return
            answer = door.ask(
                "check_in", "POST", f"{day.urls.dispatch}/trucks", truck.check_in_body()
            )

            def ack(visit: Any) -> None:
                day.acks.check_ins[visit["plate"]] = CheckInAck(visit["plate"], visit["visit_id"])

            day.note("check_in", answer, truck.plate, ack)


def yard_office(day: Day) -> None:
    """Every few seconds: assign what the suggestion loads (every other load accepted, the others
    put on their truck by hand at the desk), then send full enough trucks through a bay and out.
    Ends once the rest of the day is done and two rounds in a row found nothing to do."""
    first_goods: dict[str, float] = {}
    idle = 0
    with day.door() as door:
        for number in range(1, 1_000_000):
            finishing = day.supply_done.is_set()
            busy = _assign_round(day, door, number)
            busy |= _move_round(day, door, first_goods, finishing)
            idle = idle + 1 if finishing and not busy else 0
            if idle >= 2 or day.stop.wait(YARD_EVERY_S):
                return


def _assign_round(day: Day, door: Door, number: int) -> bool:
    suggestion = door.read(f"{day.urls.dispatch}/suggestions")
    if not suggestion:
        return False
    busy = False
    for index, load in enumerate(suggestion["loads"]):
        trade_ids = tuple(t for part in load["parts"] for t in part["trade_ids"])
        if not trade_ids or load["plate"] not in day.plates:
            continue
        busy = True
        if (number + index) % 2:
            _accept(day, door, suggestion["suggestion_id"], load["plate"])
        else:
            _by_hand(day, door, load["plate"], trade_ids)
    return busy


def _record_assignments(day: Day, made: Sequence[dict[str, Any]], via: str) -> None:
    for item in made:
        day.acks.assignments[item["assignment_id"]] = AssignmentAck(
            assignment_id=item["assignment_id"],
            plate=item["plate"],
            visit_id=item["visit_id"],
            trade_ids=tuple(line["trade_id"] for line in item["lines"]),
            via=via,
        )


def _accept(day: Day, door: Door, suggestion_id: str, plate: str) -> None:
    answer = door.ask(
        "assignment",
        "POST",
        f"{day.urls.dispatch}/suggestions/{suggestion_id}/accept",
        {"accepted_by": YARD_BY, "plates": [plate]},
    )

    def ack(outcome: Any) -> None:
        _record_assignments(day, outcome["assigned"], "suggestion")
        for refused in outcome["refused"]:
            day.acks.refused[f"assignment {refused['error']}"] += 1

    day.note("assignment", answer, f"{plate} from {suggestion_id}", ack)


def _by_hand(day: Day, door: Door, plate: str, trade_ids: tuple[str, ...]) -> None:
    answer = door.ask(
        "assignment",
        "POST",
        f"{day.urls.dispatch}/assignments",
        {"plate": plate, "trade_ids": list(trade_ids), "assigned_by": DESK_BY},
    )
    day.note(
        "assignment",
        answer,
        f"{plate} by hand",
        lambda made: _record_assignments(day, made, "desk"),
    )


NEXT_STEP = {"assigned": "loading", "loading": "loaded", "loaded": "departed"}
STEP_PATH = {"loading": "bay", "loaded": "loaded", "departed": "departure"}


def _move_round(day: Day, door: Door, first_goods: dict[str, float], finishing: bool) -> bool:
    """Trucks full enough, or with goods for long enough, go to a bay, are loaded and leave; a
    truck whose steps an outage interrupted goes on from where it is."""
    trucks = door.read(f"{day.urls.dispatch}/trucks")
    yard = door.read(f"{day.urls.dispatch}/yard")
    if trucks is None or yard is None:
        return False
    free = [bay["bay"] for bay in yard["bays"] if not bay["plate"]]
    now = time.monotonic()
    busy = False
    for truck in trucks:
        plate, status = truck["plate"], truck["status"]
        if plate not in day.plates or status not in NEXT_STEP:
            continue
        if status == "assigned":
            since = first_goods.setdefault(plate, now)
            ready = truck["fill_ratio"] >= LEAVE_AT_FILL or now - since >= day.leave_after_s
            if not free or not (ready or finishing):
                continue
            bay: int | None = free.pop(0)
        else:
            bay = truck["bay"]
        busy = True
        _send_off(day, door, plate, status, bay)
    return busy


def _record_move(day: Day, step: str) -> Callable[[Any], None]:
    def ack(visit: Any) -> None:
        day.acks.moves.append(MoveAck(visit["plate"], visit["visit_id"], step))

    return ack


def _send_off(day: Day, door: Door, plate: str, status: str, bay: int | None) -> None:
    while status in NEXT_STEP:
        step = NEXT_STEP[status]
        body: dict[str, Any] = {"by": GATE_BY if step == "departed" else YARD_BY}
        if step == "loading":
            body["bay"] = bay
        answer = door.ask(
            "move", "POST", f"{day.urls.dispatch}/trucks/{quote(plate)}/{STEP_PATH[step]}", body
        )
        day.note("move", answer, f"{plate} {step}", _record_move(day, step))
        if not answer.ok:
            return
        status = step
