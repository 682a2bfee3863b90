"""Runs a day plan against a running hall, through its front doors only.

One actor (a thread) per platform scale weighs that station's lots: load the simulated scale,
wait for the stable light, scan the tag with the sample, print the ticket, unload, wait for zero.
The trading floor places, amends and cancels the merchants' bids; the gate checks trucks in; the
yard office takes the suggested loads every few simulated minutes and sends trucks that are full
enough (or waited long enough) to a free bay, loads them and lets them go. At the close the
merchants withdraw what is left of their bids and the cooperative its unsold lots, and the yard
office sends every truck off. Every refusal is printed with its code and counted; every HTTP call
has a timeout and the run a real-time deadline.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

import httpx

from melon_contracts.reference import Grade
from melon_contracts.units import amount_fen, fen_to_yuan, kg_to_g, yuan_to_fen
from melon_devkit.demo import DEMO_ACCOUNTS, demo_token
from melon_devkit.hall import Ports
from melon_devkit.simday.clock import Clock, DeadlineReached, EagerClock, ScaledClock
from melon_devkit.simday.plan import (
    MINUTE,
    Bid,
    DayPlan,
    Lot,
    Truck,
    clock_text,
    kg_text,
)
from melon_devkit.weigh import WeighingFailed, load, unload, wait_scale

T = TypeVar("T")

HTTP_TIMEOUT_S = 15.0
"""Per request: dispatch's decisions wait for the yard's log, suggestions for the solver."""
SETTLE_TIMEOUT_S = 30.0
"""How long to wait for the hall to catch up (bids reported, trades in the yard, lots graded)."""
COOPERATIVE = next(a[0] for a in DEMO_ACCOUNTS if a[3] == "cooperative")
MERCHANTS = tuple(a[0] for a in DEMO_ACCOUNTS if a[3] == "merchant")
MIN_BID_G = 100_000
OPEN_TO_LOADING = ("waiting", "assigned")


@dataclass(frozen=True)
class Urls:
    """Where the hall's front doors are; 127.0.0.1 only."""

    ingest: str
    pricing: str
    dispatch: str
    scales: str

    @classmethod
    def local(cls, ports: Ports | None = None) -> Urls:
        p = ports or Ports()
        return cls(
            f"http://127.0.0.1:{p.ingest}",
            f"http://127.0.0.1:{p.pricing}",
            f"http://127.0.0.1:{p.dispatch}",
            f"http://127.0.0.1:{p.scales}",
        )


class Refused(Exception):
    """A front door said no: its status, the hall's error code and the reason."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def call(
    http: httpx.Client,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """The JSON answer of a 2xx; ``Refused`` with the hall's error code otherwise."""
    response = http.request(method, url, json=body, headers=headers)
    if response.is_success:
        return response.json()
    try:
        error = response.json()
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    raise Refused(
        response.status_code,
        str(error.get("error") or f"http_{response.status_code}"),
        str(error.get("detail") or response.text[:200]),
    )


def auth(account_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_token(account_id)}"}


def fit_quantity_g(remaining_fen: int, price_fen_per_kg: int, wanted_g: int) -> int | None:
    """What a merchant refused for credit bids instead: as much as the credit left pays for, in
    10 kg steps and less than before; None when that is under 100 kg."""
    affordable = remaining_fen * 1000 // max(1, price_fen_per_kg)
    quantity = min(affordable, wanted_g * 9 // 10) // 10_000 * 10_000
    while quantity > 0 and amount_fen(quantity, price_fen_per_kg) > remaining_fen:
        quantity -= 10_000
    return quantity if quantity >= MIN_BID_G else None


@dataclass
class Outcomes:
    """What the actors did, for the summary; shared between threads under a lock."""

    weighed: dict[str, dict[str, Any]] = field(default_factory=dict)
    scanned_again: set[str] = field(default_factory=set)
    placed: dict[str, int] = field(default_factory=dict)
    """Bid id -> the quantity it went in with (less than planned when credit ran short)."""
    backed_off: set[str] = field(default_factory=set)
    amended: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    cancelled_at_close: set[str] = field(default_factory=set)
    withdrawn: dict[str, int] = field(default_factory=dict)
    """Lot id -> grams left unsold when the cooperative withdrew it at the close."""
    checked_in: set[str] = field(default_factory=set)
    refusals: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class Day:
    """One run: the plan, the hall's URLs, the clock, the output and what happened."""

    def __init__(
        self,
        plan: DayPlan,
        urls: Urls,
        clock: Clock,
        out: TextIO,
        close: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.plan = plan
        self.urls = urls
        self.clock = clock
        self.out = out
        self.close = close
        self.transport = transport
        self.outcomes = Outcomes()
        self.lock = threading.Lock()
        self.done: dict[str, threading.Event] = {}
        """Actor -> set when it finished; "close" once bids and lots are withdrawn."""
        self.short_of_credit: set[str] = set()
        """Merchants refused for credit today, who look at their credit before bidding."""

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        with httpx.Client(timeout=HTTP_TIMEOUT_S, transport=self.transport) as http:
            yield http

    def say(self, who: str, text: str) -> None:
        with self.lock:
            print(f"{clock_text(int(self.clock.now()))} {who:<6} {text}", file=self.out, flush=True)

    def refused(self, who: str, what: str, refusal: Refused) -> None:
        with self.lock:
            self.outcomes.refusals[refusal.code] += 1
        self.say(who, f"{what}: refused {refusal.status} {refusal.code}: {refusal.detail}")

    def error(self, who: str, text: str) -> None:
        with self.lock:
            self.outcomes.errors.append(f"{who}: {text}")
        self.say(who, f"error: {text}")

    def poll(self, probe: Callable[[], T | None], timeout_s: float = SETTLE_TIMEOUT_S) -> T | None:
        """``probe()`` until it answers, for at most ``timeout_s`` of real time; None if not."""
        ends = time.monotonic() + timeout_s
        while True:
            self.clock.check_deadline()
            found = probe()
            if found is not None or time.monotonic() > ends:
                return found
            time.sleep(0.2)


def run_day(
    plan: DayPlan,
    urls: Urls,
    *,
    speed: float | None,
    deadline_s: float,
    out: TextIO,
    close: bool = True,
    transport: httpx.BaseTransport | None = None,
) -> Summary:
    """Run the plan at ``speed`` simulated seconds per real second (None: as fast as the hall
    takes it); the summary reads its figures back from the services."""
    began = time.monotonic()
    starts = _first_moment(plan)
    clock: Clock = (
        EagerClock(starts, deadline_s) if speed is None else ScaledClock(starts, speed, deadline_s)
    )
    day = Day(plan, urls, clock, out, close, transport)
    actors: list[tuple[str, Callable[[Day], None]]] = []
    for station in plan.stations:
        lots = [lot for lot in plan.lots if lot.station == station.station]
        if lots:
            actors.append((station.station, _station_worker(station.station, lots)))
    actors += [("bids", _trading_floor), ("gate", _gate), ("yard", _yard_office), ("close", _bell)]
    threads = []
    for name, actor in actors:
        clock.join(name)
        day.done[name] = threading.Event()
        threads.append(
            threading.Thread(target=_act, args=(day, name, actor), name=f"simday-{name}")
        )
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, began + deadline_s + HTTP_TIMEOUT_S - time.monotonic()))
    completed = not any(t.is_alive() for t in threads) and not day.outcomes.errors
    ended = clock.now()
    with day.client() as http:
        return summarize(day, http, completed, time.monotonic() - began, starts, ended, speed)


def _first_moment(plan: DayPlan) -> int:
    moments = [lot.arrives_at_s for lot in plan.lots] + [b.at_s for b in plan.bids]
    moments += [t.arrives_at_s for t in plan.trucks]
    return min(moments, default=plan.starts_at_s) - 5 * MINUTE


def _act(day: Day, name: str, actor: Callable[[Day], None]) -> None:
    try:
        actor(day)
    except DeadlineReached:
        day.error(name, "the run's deadline passed; stopping")
    except (httpx.HTTPError, Refused, WeighingFailed) as exc:
        day.error(name, f"stopped: {type(exc).__name__}: {exc}")
    except Exception as exc:
        day.error(name, f"stopped by a bug: {type(exc).__name__}: {exc}")
        raise
    finally:
        day.done[name].set()
        day.clock.leave(name)


def _station_worker(station: str, lots: Sequence[Lot]) -> Callable[[Day], None]:
    def work(day: Day) -> None:
        with day.client() as http:
            for lot in lots:
                day.clock.sleep_until(station, lot.starts_at_s)
                # Unloading and stacking the crates takes simulated minutes: others may act
                # meanwhile.
                day.clock.hold(station, lot.ends_at_s)
                _weigh(day, http, lot)

    return work


def _weigh(day: Day, http: httpx.Client, lot: Lot) -> None:
    station, urls = lot.station, day.urls
    ticket: dict[str, Any] | None = None
    try:
        if lot.noise_frames:
            # Interference on the serial line; the gateway skips what it cannot decode.
            garbage = f"{urls.scales}/scales/{station}/garbage"
            call(http, "POST", garbage, {"frames": lot.noise_frames})
        load(http, urls.scales, station, lot.gross_kg)
        try:
            wait_scale(http, urls.ingest, station, "stable")
            ticket = call(
                http,
                "POST",
                f"{urls.ingest}/stations/{station}/weighings",
                lot.weighing_body(day.plan.date),
            )
            if not ticket["repeated"]:
                call(
                    http,
                    "POST",
                    f"{urls.ingest}/stations/{station}/tickets/{ticket['ticket_no']}/prints",
                    {"operator_id": lot.operator_id},
                )
        finally:
            unload(http, urls.scales, station)
            wait_scale(http, urls.ingest, station, "empty")
    except Refused as refusal:
        day.refused(station, f"{lot.lot_id} ({lot.farmer_id}, {lot.gross_kg} kg)", refusal)
    except WeighingFailed as exc:
        day.refused(station, lot.lot_id, Refused(0, "scale_timeout", str(exc)))
    if ticket is None:
        return
    if ticket["repeated"] and (ticket["farmer_id"], ticket["gross_g"]) != (
        lot.farmer_id,
        lot.gross_g,
    ):
        day.error(
            station,
            f"lot tag {lot.lot_id} is another lot's ({ticket['farmer_id']}, gross "
            f"{ticket['gross_kg']} kg): a plan of the same seed and date with other sizes ran "
            "before; choose another seed",
        )
        return
    with day.lock:
        day.outcomes.weighed[lot.lot_id] = ticket
        if ticket["repeated"]:
            day.outcomes.scanned_again.add(lot.lot_id)
    graded = day.poll(lambda: _graded(http, urls, lot.lot_id), timeout_s=5.0)
    grade = (
        f"{graded['grade']['grade_zh']} {graded['grade']['brix_mean']} °Brix"
        if graded
        else "grading ..."
    )
    again = " (scanned again)" if ticket["repeated"] else ""
    day.say(
        station,
        f"{lot.lot_id}  {lot.farmer_id}  {lot.village_group}  {lot.variety}  "
        f"{lot.crates} crates  net {ticket['net_kg']} kg  ticket {ticket['ticket_no']}{again}  "
        f"{grade}",
    )


def _graded(http: httpx.Client, urls: Urls, lot_id: str) -> dict[str, Any] | None:
    response = http.get(f"{urls.ingest}/lots/{lot_id}")
    if response.status_code != 200:
        return None
    lot: dict[str, Any] = response.json()
    return lot if lot.get("status") == "graded" else None


def _trading_floor(day: Day) -> None:
    events: list[tuple[int, int, str, Bid]] = []
    for bid in day.plan.bids:
        events.append((bid.at_s, 0, "place", bid))
        if bid.amend_at_s is not None:
            events.append((bid.amend_at_s, 1, "amend", bid))
        if bid.cancel_at_s is not None:
            events.append((bid.cancel_at_s, 1, "cancel", bid))
    events.sort(key=lambda e: (e[0], e[1], e[3].bid_id))
    with day.client() as http:
        for at, _, action, bid in events:
            day.clock.sleep_until("bids", at)
            if action == "place":
                _place(day, http, bid)
            elif bid.bid_id in day.outcomes.placed:
                _change(day, http, bid, action)


def _place(day: Day, http: httpx.Client, bid: Bid) -> None:
    """Place a bid; a merchant refused for credit bids what the credit left pays for, and from
    then on looks at their credit before bidding, rather than being refused again."""
    who = bid.merchant_id
    quantity_g: int | None = bid.quantity_g
    if who in day.short_of_credit:
        quantity_g = _within_credit(day, http, bid, bid.quantity_g)
    for _ in range(3):
        if quantity_g is None:
            return
        body = bid.body()
        if quantity_g != bid.quantity_g:
            body["quantity_kg"] = kg_text(quantity_g, 0)
            if bid.min_lot_g is not None:
                body["min_lot_kg"] = kg_text(min(bid.min_lot_g, quantity_g), 0)
        try:
            call(http, "POST", f"{day.urls.pricing}/bids", body, auth(who))
        except Refused as refusal:
            day.refused("bids", f"{who} {bid.bid_id}", refusal)
            if refusal.code != "credit_exceeded":
                return
            with day.lock:
                day.short_of_credit.add(who)
            quantity_g = _within_credit(day, http, bid, quantity_g, refused=True)
            continue
        with day.lock:
            day.outcomes.placed[bid.bid_id] = quantity_g
        cold = ", cold chain" if bid.cold_chain else ""
        day.say(
            "bids",
            f"{who}  {bid.bid_id}  {bid.variety} {Grade(bid.grade).zh}  "
            f"{fen_to_yuan(bid.price_fen_per_kg)} yuan/kg  {kg_text(quantity_g, 0)} kg  "
            f"to {bid.destination}{cold}",
        )
        return


def _within_credit(
    day: Day, http: httpx.Client, bid: Bid, wanted_g: int, refused: bool = False
) -> int | None:
    """The quantity of the bid the merchant's credit pays for now; None (and says so) if too
    little is left for a bid."""
    who = bid.merchant_id
    me = call(http, "GET", f"{day.urls.pricing}/me", headers=auth(who))
    remaining = yuan_to_fen(me["remaining_yuan"])
    if not refused and amount_fen(wanted_g, bid.price_fen_per_kg) <= remaining:
        return wanted_g
    fits = fit_quantity_g(remaining, bid.price_fen_per_kg, wanted_g)
    if fits is None:
        day.say("bids", f"{who} has {me['remaining_yuan']} yuan of credit left; no {bid.bid_id}")
        return None
    with day.lock:
        day.outcomes.backed_off.add(bid.bid_id)
    day.say("bids", f"{who} backs off to {kg_text(fits, 0)} kg for {bid.bid_id}")
    return fits


def _bid_status(http: httpx.Client, day: Day, bid: Bid) -> str | None:
    """The bid's status once the matcher reported it; None while it is pending or unknown."""
    for item in call(http, "GET", f"{day.urls.pricing}/me/bids", headers=auth(bid.merchant_id)):
        if item["bid_id"] == bid.bid_id and item["status"] != "pending":
            return str(item["status"])
    return None


def _change(day: Day, http: httpx.Client, bid: Bid, action: str) -> None:
    status = day.poll(lambda: _bid_status(http, day, bid), timeout_s=10.0)
    if status != "resting":
        day.say("bids", f"{bid.merchant_id} would {action} {bid.bid_id}, but it is {status}")
        return
    try:
        if action == "amend" and bid.amend_price_fen_per_kg is not None:
            price = fen_to_yuan(bid.amend_price_fen_per_kg)
            call(
                http,
                "PATCH",
                f"{day.urls.pricing}/bids/{bid.bid_id}",
                {"price_yuan_per_kg": str(price)},
                auth(bid.merchant_id),
            )
            with day.lock:
                day.outcomes.amended.add(bid.bid_id)
            day.say("bids", f"{bid.merchant_id} raises {bid.bid_id} to {price} yuan/kg")
        elif action == "cancel":
            call(
                http,
                "POST",
                f"{day.urls.pricing}/bids/{bid.bid_id}/cancel",
                headers=auth(bid.merchant_id),
            )
            with day.lock:
                day.outcomes.cancelled.add(bid.bid_id)
            day.say("bids", f"{bid.merchant_id} cancels {bid.bid_id}: nothing came at its price")
    except Refused as refusal:
        day.refused("bids", f"{bid.merchant_id} {action} {bid.bid_id}", refusal)


def _gate(day: Day) -> None:
    with day.client() as http:
        for truck in day.plan.trucks:
            day.clock.sleep_until("gate", truck.arrives_at_s)
            _check_in(day, http, truck)


def _same_truck(view: dict[str, Any], truck: Truck) -> bool:
    return bool(view["driver"] == truck.driver and view["capacity_g"] == truck.capacity_g)


def _check_in(day: Day, http: httpx.Client, truck: Truck) -> None:
    url = f"{day.urls.dispatch}/trucks"
    known = http.get(f"{url}/{quote(truck.plate)}")
    if known.status_code == 200 and _same_truck(known.json(), truck):
        # Came through the gate on an earlier run of this day: a new check-in would be a new visit.
        with day.lock:
            day.outcomes.checked_in.add(truck.plate)
        day.say("gate", f"{truck.plate} already came through the gate ({known.json()['status']})")
        return
    try:
        call(http, "POST", url, truck.check_in_body())
    except Refused as refusal:
        day.refused("gate", truck.plate, refusal)
        return
    with day.lock:
        day.outcomes.checked_in.add(truck.plate)
    kind = f"reefer at {truck.setpoint_c} °C" if truck.setpoint_c else "ambient"
    where = "/".join(truck.destinations) or "anywhere"
    day.say(
        "gate",
        f"{truck.plate}  {truck.driver}  {kg_text(truck.capacity_g, 0)} kg  {kind}  to {where}",
    )


@dataclass
class _Yard:
    """The yard office's notes: its own trucks, when each got goods, what is due when."""

    plates: dict[str, Truck]
    first_goods: dict[str, float] = field(default_factory=dict)
    due: list[tuple[float, str, str]] = field(default_factory=list)
    """(when, plate, step): "loaded" when loading ends, "departure" after the paperwork."""


def _norm(plate: str) -> str:
    return plate.strip().upper()


def _yard_office(day: Day) -> None:
    plan, policy = day.plan, day.plan.dispatch
    notes = _Yard({_norm(t.plate): t for t in plan.trucks})
    if not notes.plates:
        return
    next_round = float(min(t.arrives_at_s for t in plan.trucks) + policy.every_s)
    closing = False
    with day.client() as http:
        while True:
            now = day.clock.now()
            for item in sorted(notes.due):
                if item[0] <= now:
                    notes.due.remove(item)
                    _step(day, http, notes, item[1], item[2])
            if not closing and now >= plan.closes_at_s:
                _wait_for(day, "close")
                _trades_reached_the_yard(day, http)
                closing, next_round = True, now
            if now >= next_round:
                _round(day, http, notes, closing)
                next_round = now + policy.every_s
            if closing and not notes.due and not _ours_in_yard(day, http, notes):
                return
            wake = min([next_round] + [item[0] for item in notes.due])
            if not closing:
                wake = min(wake, plan.closes_at_s)
            day.clock.sleep_until("yard", wake)


def _wait_for(day: Day, *actors: str) -> None:
    """Until the actors finished; at a slow speed, work may run on past its planned time."""
    for actor in actors:
        while not day.done[actor].wait(timeout=0.5):
            day.clock.check_deadline()


def _ours_in_yard(day: Day, http: httpx.Client, notes: _Yard) -> list[dict[str, Any]]:
    trucks = call(http, "GET", f"{day.urls.dispatch}/trucks")
    return [t for t in trucks if _norm(t["plate"]) in notes.plates]


def _round(day: Day, http: httpx.Client, notes: _Yard, closing: bool) -> None:
    """Take the suggested loads for the office's trucks, then send the ready ones to bays; at
    the close, trucks nothing was put on leave empty."""
    urls, policy = day.urls, day.plan.dispatch
    ours = _ours_in_yard(day, http, notes)
    open_plates = [t["plate"] for t in ours if t["status"] in OPEN_TO_LOADING]
    if open_plates and call(http, "GET", f"{urls.dispatch}/shipments"):
        _accept(day, http, open_plates)
        ours = _ours_in_yard(day, http, notes)
    now = day.clock.now()
    free = [
        bay["bay"] for bay in call(http, "GET", f"{urls.dispatch}/yard")["bays"] if not bay["plate"]
    ]
    for truck in ours:
        plate = _norm(truck["plate"])
        if truck["status"] == "assigned":
            since = notes.first_goods.setdefault(plate, now)
            if free and policy.ready(truck["fill_ratio"], now - since, closing):
                _to_bay(day, http, notes, truck, free.pop(0))
        elif truck["status"] == "waiting" and closing:
            _move(day, http, truck["plate"], "departure", "leaves empty: nothing for it today")
        elif truck["status"] in ("loading", "loaded") and all(p != plate for _, p, _ in notes.due):
            # Left at a bay by a run that stopped early: finish what it started.
            step = "loaded" if truck["status"] == "loading" else "departure"
            notes.due.append((now, plate, step))


def _accept(day: Day, http: httpx.Client, plates: list[str]) -> None:
    urls, by = day.urls, day.plan.dispatch.by
    for _ in range(3):
        suggestion = call(http, "GET", f"{urls.dispatch}/suggestions")
        loads = [item for item in suggestion["loads"] if item["plate"] in plates]
        if not loads:
            return
        try:
            outcome = call(
                http,
                "POST",
                f"{urls.dispatch}/suggestions/{suggestion['suggestion_id']}/accept",
                {"accepted_by": by, "plates": [item["plate"] for item in loads]},
            )
        except Refused as refusal:
            day.refused("yard", "accepting the suggested loads", refusal)
            if refusal.code == "suggestion_stale":
                continue
            return
        for taken in loads:
            lots = sorted({lot for part in taken["parts"] for lot in part["lot_ids"]})
            day.say(
                "yard",
                f"{taken['plate']}  +{kg_text(taken['load_g'])} kg "
                f"({taken['fill_ratio_after']:.0%} full)  lots {', '.join(lots)}",
            )
        for refused in outcome["refused"]:
            with day.lock:
                day.outcomes.refusals[refused["error"]] += 1
            day.say("yard", f"{refused['plate']}: refused {refused['error']}: {refused['detail']}")
        return


def _to_bay(day: Day, http: httpx.Client, notes: _Yard, truck: dict[str, Any], bay: int) -> None:
    plate = truck["plate"]
    fill = f"{kg_text(truck['loaded_g'])} of {truck['capacity_kg']} kg, {truck['fill_ratio']:.0%}"
    if _move(day, http, plate, "bay", f"to bay {bay} ({fill})", bay):
        loading = day.plan.dispatch.loading_time_s(truck["loaded_g"])
        notes.due.append((day.clock.now() + loading, plate, "loaded"))


def _step(day: Day, http: httpx.Client, notes: _Yard, plate: str, step: str) -> None:
    if step == "loaded":
        if _move(day, http, plate, "loaded", "loaded; dispatch note printed"):
            notes.due.append((day.clock.now() + day.plan.dispatch.paperwork_s, plate, "departure"))
        return
    truck = call(http, "GET", f"{day.urls.dispatch}/trucks/{quote(plate)}")
    _move(
        day,
        http,
        plate,
        "departure",
        f"leaves with {kg_text(truck['loaded_g'])} kg ({truck['fill_ratio']:.0%} of "
        f"{truck['capacity_kg']} kg)",
    )


def _move(
    day: Day, http: httpx.Client, plate: str, step: str, said: str, bay: int | None = None
) -> bool:
    body: dict[str, Any] = {"by": day.plan.dispatch.by}
    if bay is not None:
        body["bay"] = bay
    try:
        call(http, "POST", f"{day.urls.dispatch}/trucks/{quote(plate)}/{step}", body)
    except Refused as refusal:
        day.refused("yard", f"{plate} {step}", refusal)
        return False
    day.say("yard", f"{plate}  {said}")
    return True


def _our_trades(day: Day, http: httpx.Client) -> list[dict[str, Any]]:
    """The trades of this day's bids (also those of an earlier run of the same day)."""
    ours = {bid.bid_id for bid in day.plan.bids}
    merchants = sorted({bid.merchant_id for bid in day.plan.bids})
    return [
        trade
        for merchant in merchants
        for trade in call(http, "GET", f"{day.urls.pricing}/me/trades", headers=auth(merchant))
        if trade["bid_id"] in ours
    ]


def _trades_reached_the_yard(day: Day, http: httpx.Client) -> None:
    wanted = {trade["trade_id"] for trade in _our_trades(day, http)}

    def known() -> bool | None:
        items = call(http, "GET", f"{day.urls.dispatch}/shipments")
        items += call(http, "GET", f"{day.urls.dispatch}/assignments")
        seen = {line["trade_id"] for item in items for line in item["lines"]}
        return True if wanted <= seen else None

    if day.poll(known) is None:
        day.error("yard", "some of the day's trades did not reach dispatch in time")


def _bell(day: Day) -> None:
    """The close: wait for the matcher, then the merchants cancel what is left of their bids
    and the cooperative withdraws what is left of its lots."""
    day.clock.sleep_until("close", day.plan.closes_at_s)
    _wait_for(day, *(name for name in day.done if name not in ("yard", "close")))
    with day.client() as http:
        placed = [bid for bid in day.plan.bids if bid.bid_id in day.outcomes.placed]
        statuses = day.poll(lambda: _statuses(day, http, placed))
        if statuses is None:
            day.error("close", "the matcher did not report every bid in time")
            statuses = {}
        if not day.close:
            day.say("close", "the trading day ends; bids and lots stay on the books")
            return
        for bid in placed:
            if statuses.get(bid.bid_id) == "resting":
                try:
                    call(
                        http,
                        "POST",
                        f"{day.urls.pricing}/bids/{bid.bid_id}/cancel",
                        headers=auth(bid.merchant_id),
                    )
                except Refused as refusal:
                    day.refused("close", f"{bid.merchant_id} cancel {bid.bid_id}", refusal)
                    continue
                with day.lock:
                    day.outcomes.cancelled_at_close.add(bid.bid_id)
        if day.poll(lambda: _all_final(day, http, placed)) is None:
            day.error("close", "the matcher did not confirm the cancellations in time")
        _withdraw_unsold(day, http)
        left = len(day.outcomes.cancelled_at_close)
        withdrawn = day.outcomes.withdrawn
        day.say(
            "close",
            f"the trading day ends: {left} bids cancelled with something left, "
            f"{len(withdrawn)} lots withdrawn unsold ({kg_text(sum(withdrawn.values()))} kg)",
        )


def _statuses(day: Day, http: httpx.Client, bids: Sequence[Bid]) -> dict[str, str] | None:
    """Every bid's status, once the matcher reported each one."""
    found: dict[str, str] = {}
    for merchant in sorted({bid.merchant_id for bid in bids}):
        for item in call(http, "GET", f"{day.urls.pricing}/me/bids", headers=auth(merchant)):
            found[item["bid_id"]] = item["status"]
    wanted = {bid.bid_id: found.get(bid.bid_id, "pending") for bid in bids}
    return None if "pending" in wanted.values() else wanted


def _all_final(day: Day, http: httpx.Client, bids: Sequence[Bid]) -> bool | None:
    statuses = _statuses(day, http, bids)
    return None if statuses is None or "resting" in statuses.values() else True


def _withdraw_unsold(day: Day, http: httpx.Client) -> None:
    sold: Counter[str] = Counter()
    for merchant in MERCHANTS:
        response = http.get(f"{day.urls.pricing}/me/trades", headers=auth(merchant))
        if response.status_code == 401:
            continue  # a demo account this hall was started without buys nothing here
        response.raise_for_status()
        for trade in response.json():
            sold[trade["lot_id"]] += kg_to_g(trade["weight_kg"])
    board = call(http, "GET", f"{day.urls.pricing}/board")["lines"]
    offering = {line["book"] for line in board if line["lots_resting"] > 0}
    for lot_id in sorted(day.outcomes.weighed):
        lot = _graded(http, day.urls, lot_id)
        if lot is None or lot["net_g"] - sold[lot_id] <= 0:
            continue
        if f"{lot['variety']}.{lot['grade']['grade']}" not in offering:
            continue  # nothing of its book is on offer: sold, or withdrawn by an earlier run
        try:
            call(
                http,
                "POST",
                f"{day.urls.pricing}/lots/{lot_id}/withdraw",
                {
                    "variety": lot["variety"],
                    "grade": lot["grade"]["grade"],
                    "reason": "unsold at the close",
                },
                auth(COOPERATIVE),
            )
        except Refused as refusal:
            day.refused("close", f"withdraw {lot_id}", refusal)
            continue
        with day.lock:
            day.outcomes.withdrawn[lot_id] = lot["net_g"] - sold[lot_id]


@dataclass
class TruckFigures:
    plate: str
    status: str
    loaded_g: int
    capacity_g: int

    @property
    def fill(self) -> float:
        return self.loaded_g / self.capacity_g if self.capacity_g else 0.0


@dataclass
class Summary:
    """The day in figures, as the services report them at the end of the run."""

    date: str
    seed: int
    speed: str
    real_s: float
    from_s: int
    to_s: int
    completed: bool
    lots_planned: int
    lots_weighed: int
    lots_scanned_again: int
    weighed_g_by_grade: dict[str, int]
    lots_by_grade: dict[str, int]
    bids_planned: int
    bids_placed: int
    bids_backed_off: int
    bids_amended: int
    bids_cancelled: int
    bids_cancelled_at_close: int
    bid_statuses: dict[str, int]
    trades: int
    sold_g: int
    sold_fen: int
    sold_g_by_merchant: dict[str, int]
    lots_withdrawn: int
    withdrawn_g: int
    waiting_g: int
    """Sold but still waiting in the yard for a truck when the day ended."""
    trucks_planned: int
    trucks_checked_in: int
    trucks: list[TruckFigures]
    refusals: dict[str, int]
    errors: list[str]

    @property
    def departed(self) -> list[TruckFigures]:
        return [t for t in self.trucks if t.status == "departed"]

    @property
    def departed_with_goods(self) -> list[TruckFigures]:
        return [t for t in self.departed if t.loaded_g > 0]

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "trucks"}
        data["trucks"] = [{**t.__dict__, "fill": round(t.fill, 4)} for t in self.trucks]
        return data

    def lines(self) -> list[str]:
        weighed = sum(self.weighed_g_by_grade.values())
        by_grade = ", ".join(
            f"{Grade(g).zh} {kg_text(grams)} kg ({self.lots_by_grade[g]})"
            for g, grams in self.weighed_g_by_grade.items()
        )
        goods = self.departed_with_goods
        carried = sum(t.loaded_g for t in goods)
        mean_fill = sum(t.fill for t in goods) / len(goods) if goods else 0.0
        refusals = ", ".join(f"{code} {n}" for code, n in sorted(self.refusals.items()))
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(self.bid_statuses.items()))
        out = [
            f"day {self.date} (seed {self.seed}), {clock_text(self.from_s)}-"
            f"{clock_text(self.to_s)} hall time at speed {self.speed}, {self.real_s:.0f} s real"
            + ("" if self.completed else "; NOT COMPLETED"),
            f"  lots: {self.lots_weighed} of {self.lots_planned} weighed"
            f" ({self.lots_scanned_again} scanned again), {kg_text(weighed)} kg net",
            f"  by grade: {by_grade or '-'}",
            f"  bids: {self.bids_placed} of {self.bids_planned} placed, "
            f"{self.bids_backed_off} backed off for credit, {self.bids_amended} amended, "
            f"{self.bids_cancelled} cancelled, {self.bids_cancelled_at_close} cancelled at the "
            f"close; now {statuses or '-'}",
            f"  trades: {self.trades}, {kg_text(self.sold_g)} kg sold for "
            f"{fen_to_yuan(self.sold_fen)} yuan"
            + "".join(f"; {m} {kg_text(g)} kg" for m, g in sorted(self.sold_g_by_merchant.items())),
            f"  unsold: {self.lots_withdrawn} lots withdrawn at the close, "
            f"{kg_text(self.withdrawn_g)} kg; sold and waiting for a truck: "
            f"{kg_text(self.waiting_g)} kg",
            f"  trucks: {self.trucks_checked_in} of {self.trucks_planned} checked in, "
            f"{len(self.departed)} departed, {len(goods)} with goods: {kg_text(carried)} kg, "
            f"mean fill {mean_fill:.0%}",
        ]
        out += [
            f"    {t.plate}  {t.status}  {kg_text(t.loaded_g)} of {kg_text(t.capacity_g, 0)} kg "
            f"({t.fill:.0%})"
            for t in self.trucks
        ]
        out.append(f"  refused: {refusals or 'nothing'}")
        out += [f"  error: {e}" for e in self.errors]
        return out


def summarize(
    day: Day,
    http: httpx.Client,
    completed: bool,
    real_s: float,
    from_s: float,
    to_s: float,
    speed: float | None,
) -> Summary:
    """The day's figures as the services report them, waiting a little for grading to finish."""
    plan, outcomes = day.plan, day.outcomes
    lots: dict[str, dict[str, Any]] = {}
    ends = time.monotonic() + SETTLE_TIMEOUT_S
    for lot in plan.lots:
        while True:
            response = http.get(f"{day.urls.ingest}/lots/{lot.lot_id}")
            if response.status_code != 200:
                break
            lots[lot.lot_id] = response.json()
            if lots[lot.lot_id]["status"] == "graded" or time.monotonic() > ends:
                break
            time.sleep(0.2)
    by_grade: Counter[str] = Counter()
    count_by_grade: Counter[str] = Counter()
    for lot_view in lots.values():
        grade = lot_view["grade"]["grade"] if lot_view["grade"] else "ungraded"
        by_grade[grade] += lot_view["net_g"]
        count_by_grade[grade] += 1
    order = [g.value for g in Grade] + ["ungraded"]
    trades = _our_trades(day, http)
    sold: Counter[str] = Counter()
    merchant_of = {bid.bid_id: bid.merchant_id for bid in plan.bids}
    for trade in trades:
        sold[merchant_of[trade["bid_id"]]] += kg_to_g(trade["weight_kg"])
    statuses: Counter[str] = Counter()
    ours = {bid.bid_id for bid in plan.bids}
    for merchant in sorted({bid.merchant_id for bid in plan.bids}):
        for item in call(http, "GET", f"{day.urls.pricing}/me/bids", headers=auth(merchant)):
            if item["bid_id"] in ours:
                statuses[item["status"]] += 1
    ours_traded = {trade["trade_id"] for trade in trades}
    waiting_g = sum(
        line["weight_g"]
        for shipment in call(http, "GET", f"{day.urls.dispatch}/shipments")
        for line in shipment["lines"]
        if line["trade_id"] in ours_traded
    )
    trucks: list[TruckFigures] = []
    for truck in plan.trucks:
        response = http.get(f"{day.urls.dispatch}/trucks/{quote(truck.plate)}")
        if response.status_code == 200 and _same_truck(response.json(), truck):
            view = response.json()
            trucks.append(
                TruckFigures(view["plate"], view["status"], view["loaded_g"], view["capacity_g"])
            )
    return Summary(
        date=plan.date.isoformat(),
        seed=plan.seed,
        speed="max" if speed is None else f"{speed:g}",
        real_s=round(real_s, 1),
        from_s=int(from_s),
        to_s=int(to_s),
        completed=completed,
        lots_planned=len(plan.lots),
        lots_weighed=len(lots),
        lots_scanned_again=len(outcomes.scanned_again),
        weighed_g_by_grade={g: by_grade[g] for g in order if g in by_grade},
        lots_by_grade={g: count_by_grade[g] for g in order if g in count_by_grade},
        bids_planned=len(plan.bids),
        bids_placed=len(outcomes.placed),
        bids_backed_off=len(outcomes.backed_off),
        bids_amended=len(outcomes.amended),
        bids_cancelled=len(outcomes.cancelled),
        bids_cancelled_at_close=len(outcomes.cancelled_at_close),
        bid_statuses=dict(sorted(statuses.items())),
        trades=len(trades),
        sold_g=sum(kg_to_g(t["weight_kg"]) for t in trades),
        sold_fen=sum(yuan_to_fen(Decimal(t["amount_yuan"])) for t in trades),
        sold_g_by_merchant=dict(sorted(sold.items())),
        lots_withdrawn=len(outcomes.withdrawn),
        withdrawn_g=sum(outcomes.withdrawn.values()),
        waiting_g=waiting_g,
        trucks_planned=len(plan.trucks),
        trucks_checked_in=len(outcomes.checked_in),
        trucks=trucks,
        refusals=dict(sorted(outcomes.refusals.items())),
        errors=list(outcomes.errors),
    )
