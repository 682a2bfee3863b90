"""What the topics must show after the soak, judged against what the clients were told.

``read_evidence`` reads the topics from offset 0 with plain consumers (no group, nothing
committed); ``judge`` is pure: the acknowledgements, the records and the services' own answers in,
one finding per invariant out, with the lost and the duplicated named by kind.

An acknowledged operation is *lost* when the effect it was acknowledged for is not on the topics,
and *duplicated* when its effect is there twice: two trail records or two ``LotWeighed`` events
(by event id) for one lot, two check-ins standing for one truck's arrival, one trade on two
standing assignments. A record sent again under the same event id (a relay, a producer retry) is
one effect, as every reader dedupes it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatch.domain.errors import DispatchError
from dispatch.domain.yard import Yard
from dispatch.service import to_decision
from melon_contracts.commands import AmendBid, CancelBid, OfferLot, PlaceBid
from melon_contracts.envelope import Message
from melon_contracts.events import (
    BidUpdated,
    LedgerRecord,
    LotGraded,
    LotWeighed,
    ShipmentAssigned,
    TradeExecuted,
    TruckCheckedIn,
)
from melon_contracts.topics import (
    BID_UPDATES,
    BOOK_COMMANDS,
    DISPATCH_YARD,
    INGEST_LEDGER,
    LOTS_GRADED,
    LOTS_WEIGHED,
    TRADES,
    dead_letter_topics,
)
from melon_devkit.soak.clients import Acks
from melon_devkit.trace import read_topic

LOT_WEIGHED_KIND = "lot_weighed"
TRAIL_BREAK_KIND = "trail_break"
SHOWN = 10
"""Examples a finding names at most."""
ABOUT_THE_RUN = frozenset(
    {"every process came back", "no process died unkilled", "every operation answered"}
)
"""Findings about how the run went, which no amount of waiting for the hall changes."""
LOST_KINDS = (
    "weighing",
    "grading",
    "offer",
    "bid",
    "amend",
    "cancel",
    "check_in",
    "assignment",
    "move",
)


@dataclass
class Evidence:
    """The topics' records the invariants need, each topic in its log's order."""

    trail: list[LedgerRecord] = field(default_factory=list)
    weighed: list[LotWeighed] = field(default_factory=list)
    graded: list[LotGraded] = field(default_factory=list)
    commands: list[Message] = field(default_factory=list)
    trades: list[TradeExecuted] = field(default_factory=list)
    bid_states: dict[str, BidUpdated] = field(default_factory=dict)
    """The last state of each bid."""
    yard: list[Message] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)


def read_evidence(bootstrap: str) -> Evidence:
    def messages(spec: Any) -> list[Message]:
        return [message for _, message in read_topic(bootstrap, spec)]

    evidence = Evidence(
        trail=[m for m in messages(INGEST_LEDGER) if isinstance(m, LedgerRecord)],
        weighed=[m for m in messages(LOTS_WEIGHED) if isinstance(m, LotWeighed)],
        graded=[m for m in messages(LOTS_GRADED) if isinstance(m, LotGraded)],
        commands=messages(BOOK_COMMANDS),
        trades=[m for m in messages(TRADES) if isinstance(m, TradeExecuted)],
        yard=messages(DISPATCH_YARD),
    )
    for message in messages(BID_UPDATES):
        if isinstance(message, BidUpdated):
            evidence.bid_states[message.bid_id] = message
    for spec in dead_letter_topics():
        evidence.dead_letters[spec.name] = len(read_topic(bootstrap, spec))
    return evidence


@dataclass
class Live:
    """What the services answer after the soak, compared with what their logs make."""

    lots: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Ingest's view of each acknowledged lot (``GET /lots/{id}``)."""
    assignments: list[dict[str, Any]] | None = None
    """Dispatch's ``GET /assignments?all=true``."""
    trucks: list[dict[str, Any]] | None = None
    """Dispatch's ``GET /trucks?departed=true``."""


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    lost: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in LOST_KINDS})
    duplicated: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in LOST_KINDS})
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def caught_up(self) -> bool:
        """Whether everything the hall owes the topics is there: every finding holds but those
        about the run itself."""
        return all(f.ok for f in self.findings if f.name not in ABOUT_THE_RUN)

    @property
    def lost_total(self) -> int:
        return sum(len(ids) for ids in self.lost.values())

    @property
    def duplicated_total(self) -> int:
        return sum(len(ids) for ids in self.duplicated.values())

    def add(self, name: str, problems: Sequence[str], detail_ok: str, detail_bad: str) -> None:
        self.findings.append(
            Finding(
                name,
                not problems,
                detail_ok if not problems else detail_bad.format(n=len(problems)),
                list(problems[:SHOWN]),
            )
        )


def judge(
    acks: Acks,
    evidence: Evidence,
    live: Live,
    *,
    audit: tuple[int, str] | None = None,
    replay: Any = None,
    restarts: Iterable[Any] = (),
    day_completed: bool = True,
) -> Verdict:
    """Every invariant, one finding each; ``audit`` is ``melon-ingest audit verify``'s exit code
    and output, ``replay`` the ``pricing.replay.Report``, ``restarts`` the chaos' restarts, and
    ``day_completed`` whether the clients got through the day before the run's deadline."""
    verdict = Verdict()
    with acks.lock:
        _restarts(verdict, list(restarts))
        _answered(verdict, acks, day_completed)
        _weighings(verdict, acks, evidence, live)
        _tickets(verdict, evidence)
        _bids(verdict, acks, evidence)
        _fills(verdict, evidence)
        _yard(verdict, acks, evidence, live)
    problems = [f"{topic}: {count}" for topic, count in evidence.dead_letters.items() if count]
    verdict.add(
        "no dead letters",
        problems,
        "every dead-letter topic is empty",
        "{n} dead-letter topic(s) hold letters",
    )
    if audit is not None:
        code, output = audit
        verdict.add(
            "audit trail intact",
            [] if code == 0 else [line for line in output.splitlines() if line.strip()],
            f"melon-ingest audit verify: {output.strip().splitlines()[0] if output else 'ok'}",
            f"melon-ingest audit verify exited {code}",
        )
    if replay is not None:
        verdict.add(
            "replay matches the topics",
            list(replay.differences),
            replay.summary(),
            "{n} difference(s) between the replay of book.commands and the topics",
        )
    for kind in LOST_KINDS:
        verdict.lost[kind] = sorted(set(verdict.lost[kind]))
        verdict.duplicated[kind] = sorted(set(verdict.duplicated[kind]))
    verdict.add(
        "nothing acknowledged was lost",
        [f"{kind} {item}" for kind, ids in verdict.lost.items() for item in ids],
        "every acknowledged operation is on the topics",
        "{n} acknowledged operation(s) missing from the topics",
    )
    verdict.add(
        "nothing acknowledged was doubled",
        [f"{kind} {item}" for kind, ids in verdict.duplicated.items() for item in ids],
        "every acknowledged operation is on the topics once in effect",
        "{n} acknowledged operation(s) in effect twice",
    )
    return verdict


def _restarts(verdict: Verdict, restarts: Sequence[Any]) -> None:
    never = [
        f"{r.target} killed at {r.at_s:.0f} s: {r.note}" for r in restarts if r.recovery_s is None
    ]
    verdict.add(
        "every process came back",
        never,
        f"all {len(restarts)} restarts answered again",
        "{n} restart(s) never answered",
    )
    unplanned = [f"{r.target} at {r.at_s:.0f} s: {r.note}" for r in restarts if not r.planned]
    verdict.add(
        "no process died unkilled",
        unplanned,
        "no process exited on its own",
        "{n} process(es) exited without being killed",
    )


def _answered(verdict: Verdict, acks: Acks, day_completed: bool) -> None:
    """The hall answers again after every outage: an operation retried for the client's whole
    patience (longer than any restart takes) without a definite answer means it did not."""
    problems = [f"{kind}: {count} operation(s)" for kind, count in sorted(acks.gave_up.items())]
    if not day_completed:
        problems.append("the clients were stopped by the run's deadline before the day was done")
    verdict.add(
        "every operation answered",
        problems,
        "every operation got an acknowledgement or a refusal before its deadline",
        "{n} kind(s) of operation went unanswered until the clients gave up",
    )


def _weighings(verdict: Verdict, acks: Acks, evidence: Evidence, live: Live) -> None:
    trail: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for record in evidence.trail:
        if record.kind == LOT_WEIGHED_KIND:
            trail[str(record.body["lot"]["lot_id"])].append(
                (str(record.body["station_id"]), int(record.body["ticket_no"]))
            )
    events: dict[str, dict[str, LotWeighed]] = defaultdict(dict)
    for weighed in evidence.weighed:
        events[weighed.lot_id][str(weighed.event_id)] = weighed
    grades: dict[str, set[str]] = defaultdict(set)
    for graded in evidence.graded:
        grades[graded.lot_id].add(str(graded.event_id))
    offered = {c.lot_id for c in evidence.commands if isinstance(c, OfferLot)}
    wrong: list[str] = []
    for lot_id, ack in acks.weighings.items():
        tickets = trail.get(lot_id, [])
        if not tickets:
            verdict.lost["weighing"].append(f"{lot_id}: no record on the audit trail")
        elif len(tickets) > 1:
            verdict.duplicated["weighing"].append(f"{lot_id}: {len(tickets)} trail records")
        elif tickets[0] != (ack.station_id, ack.ticket_no):
            wrong.append(
                f"{lot_id}: acknowledged {ack.station_id} no. {ack.ticket_no}, "
                f"the trail says {tickets[0][0]} no. {tickets[0][1]}"
            )
        found = events.get(lot_id, {})
        if not found:
            verdict.lost["weighing"].append(f"{lot_id}: no LotWeighed on lots.weighed")
        elif len(found) > 1:
            verdict.duplicated["weighing"].append(f"{lot_id}: {len(found)} LotWeighed events")
        elif next(iter(found.values())).ticket_no != ack.ticket_no:
            wrong.append(
                f"{lot_id}: LotWeighed names ticket "
                f"{next(iter(found.values())).ticket_no}, acknowledged {ack.ticket_no}"
            )
        if not grades.get(lot_id):
            verdict.lost["grading"].append(f"{lot_id}: no LotGraded")
        elif len(grades[lot_id]) > 1:
            verdict.duplicated["grading"].append(f"{lot_id}: {len(grades[lot_id])} grades")
        if grades.get(lot_id) and lot_id not in offered:
            verdict.lost["offer"].append(f"{lot_id}: graded but never offered on book.commands")
        seen = live.lots.get(lot_id)
        if seen is not None and (seen.get("station_id"), seen.get("ticket_no")) != (
            ack.station_id,
            ack.ticket_no,
        ):
            wrong.append(
                f"{lot_id}: ingest now shows {seen.get('station_id')} no. "
                f"{seen.get('ticket_no')}, acknowledged no. {ack.ticket_no}"
            )
    verdict.add(
        "tickets as acknowledged",
        wrong,
        "every acknowledged lot's ticket is the one on the trail, on lots.weighed and in ingest",
        "{n} lot(s) whose ticket differs from what was acknowledged",
    )
    verdict.info["weighings_recorded_unacknowledged"] = sorted(set(trail) - set(acks.weighings))


def _tickets(verdict: Verdict, evidence: Evidence) -> None:
    numbers: dict[str, list[int]] = defaultdict(list)
    breaks = 0
    for record in evidence.trail:
        if record.kind == LOT_WEIGHED_KIND:
            numbers[str(record.body["station_id"])].append(int(record.body["ticket_no"]))
        elif record.kind == TRAIL_BREAK_KIND:
            breaks += 1
    problems = [f"{breaks} trail break record(s): numbers were voided"] if breaks else []
    for station_id, issued in sorted(numbers.items()):
        counted = Counter(issued)
        twice = sorted(n for n, times in counted.items() if times > 1)
        missing = sorted(set(range(1, max(issued) + 1)) - set(issued))
        if twice:
            problems.append(f"{station_id}: ticket number(s) issued twice: {twice[:SHOWN]}")
        if missing:
            problems.append(f"{station_id}: ticket number(s) missing: {missing[:SHOWN]}")
    issued_text = ", ".join(f"{s} 1-{max(n)}" for s, n in sorted(numbers.items())) or "none"
    verdict.add(
        "tickets gapless per station",
        problems,
        f"tickets issued: {issued_text}; no number voided, none twice",
        "{n} problem(s) with the ticket numbers",
    )


def _bids(verdict: Verdict, acks: Acks, evidence: Evidence) -> None:
    placed = {c.bid_id for c in evidence.commands if isinstance(c, PlaceBid)}
    amended = {(c.bid_id, c.price_fen_per_kg) for c in evidence.commands if isinstance(c, AmendBid)}
    cancelled = {c.bid_id for c in evidence.commands if isinstance(c, CancelBid)}
    for bid_id in acks.bids:
        if bid_id not in placed:
            verdict.lost["bid"].append(f"{bid_id}: no PlaceBid on book.commands")
        elif bid_id not in evidence.bid_states:
            verdict.lost["bid"].append(f"{bid_id}: no state on bid.updates")
    for amend in acks.amends:
        if (amend.bid_id, amend.price_fen_per_kg) not in amended:
            verdict.lost["amend"].append(
                f"{amend.bid_id} to {amend.price_fen_per_kg} fen/kg: no AmendBid on book.commands"
            )
    for bid_id in acks.cancels:
        state = evidence.bid_states.get(bid_id)
        if bid_id not in cancelled:
            verdict.lost["cancel"].append(f"{bid_id}: no CancelBid on book.commands")
        elif state is None or state.status == "resting":
            verdict.lost["cancel"].append(
                f"{bid_id}: still {state.status if state else 'unknown'} after its cancel"
            )


def _unique_trades(evidence: Evidence) -> dict[str, TradeExecuted]:
    trades: dict[str, TradeExecuted] = {}
    for trade in evidence.trades:
        trades.setdefault(trade.trade_id, trade)
    return trades


def _fills(verdict: Verdict, evidence: Evidence) -> None:
    trades = _unique_trades(evidence).values()
    lots: dict[str, tuple[int, int]] = {}
    for weighed in evidence.weighed:
        lots[weighed.lot_id] = (weighed.crates, weighed.net_g)
    sold_crates: Counter[str] = Counter()
    sold_g: Counter[str] = Counter()
    bought_g: Counter[str] = Counter()
    for trade in trades:
        sold_crates[trade.lot_id] += trade.crates
        sold_g[trade.lot_id] += trade.weight_g
        bought_g[trade.bid_id] += trade.weight_g
    oversold = []
    for lot_id in sorted(sold_crates):
        crates, net_g = lots.get(lot_id, (0, 0))
        if sold_crates[lot_id] > crates or sold_g[lot_id] > net_g:
            oversold.append(
                f"{lot_id}: sold {sold_crates[lot_id]} crates, {sold_g[lot_id]} g of "
                f"{crates} crates, {net_g} g"
            )
    verdict.add(
        "no lot oversold",
        oversold,
        f"{len(sold_crates)} lots traded, none beyond its crates and weight",
        "{n} lot(s) sold beyond what was weighed",
    )
    overfilled = []
    for bid_id in sorted(set(bought_g) | set(evidence.bid_states)):
        state = evidence.bid_states.get(bid_id)
        if state is None:
            overfilled.append(f"{bid_id}: trades but no state on bid.updates")
        elif bought_g[bid_id] > state.quantity_g or bought_g[bid_id] != state.filled_g:
            overfilled.append(
                f"{bid_id}: trades {bought_g[bid_id]} g, state says filled {state.filled_g} g "
                f"of {state.quantity_g} g"
            )
    verdict.add(
        "no bid overfilled",
        overfilled,
        f"{len(bought_g)} bids filled, none beyond its quantity; fills add up to the trades",
        "{n} bid(s) whose trades exceed or disagree with their state",
    )
    verdict.info["trades"] = len(_unique_trades(evidence))


@dataclass
class YardFold:
    """The yard as its log makes it, folded by dispatch's own rules."""

    yard: Yard
    stood: dict[str, Message]
    refused: dict[str, str]
    repeated_events: int


def fold_yard(events: Sequence[Message], bays: int = 6) -> YardFold:
    yard = Yard(bays)
    stood: dict[str, Message] = {}
    refused: dict[str, str] = {}
    seen: set[str] = set()
    repeated = 0
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            repeated += 1
            continue
        seen.add(event_id)
        try:
            yard.apply(to_decision(event))
        except DispatchError as exc:
            refused[event_id] = f"{type(exc).__name__}: {exc}"
            continue
        stood[event_id] = event
    return YardFold(yard, stood, refused, repeated)


def _yard(verdict: Verdict, acks: Acks, evidence: Evidence, live: Live) -> None:
    fold = fold_yard(evidence.yard)
    yard = fold.yard
    standing_check_ins: Counter[str] = Counter(
        e.plate for e in fold.stood.values() if isinstance(e, TruckCheckedIn)
    )
    for plate, check_in in acks.check_ins.items():
        event = fold.stood.get(check_in.visit_id)
        if not isinstance(event, TruckCheckedIn):
            why = fold.refused.get(check_in.visit_id, "not on dispatch.yard")
            verdict.lost["check_in"].append(f"{plate} visit {check_in.visit_id}: {why}")
        if standing_check_ins[plate] > 1:
            verdict.duplicated["check_in"].append(
                f"{plate}: {standing_check_ins[plate]} check-ins stand for one arrival"
            )
    holders: dict[str, list[str]] = defaultdict(list)
    for assignment in yard.assignments():
        for line in assignment.lines:
            holders[line.trade_id].append(assignment.assignment_id)
    traded = set(_unique_trades(evidence))
    acked_holders: dict[str, list[str]] = defaultdict(list)
    for assignment_id, ack in acks.assignments.items():
        if not isinstance(fold.stood.get(assignment_id), ShipmentAssigned):
            why = fold.refused.get(assignment_id, "not on dispatch.yard")
            verdict.lost["assignment"].append(f"{assignment_id} ({ack.plate}): {why}")
        elif not yard.is_standing(assignment_id):
            verdict.lost["assignment"].append(f"{assignment_id} ({ack.plate}): taken back")
        for trade_id in ack.trade_ids:
            acked_holders[trade_id].append(assignment_id)
            if trade_id not in traded:
                verdict.lost["assignment"].append(
                    f"{assignment_id}: its trade {trade_id} is not on trades"
                )
    for trade_id in sorted(set(acked_holders) | set(holders)):
        both = sorted(set(holders.get(trade_id, [])) | set(acked_holders.get(trade_id, [])))
        if len(both) > 1:
            verdict.duplicated["assignment"].append(f"trade {trade_id} on {', '.join(both)}")
    steps: Counter[tuple[str, str]] = Counter()
    for visit in yard.visits(include_departed=True):
        for step in visit.history:
            steps[(visit.visit_id, step.status.value)] += 1
    for move in acks.moves:
        if not steps[(move.visit_id, move.status)]:
            verdict.lost["move"].append(f"{move.plate} {move.status}: not in the visit's history")
    verdict.info["yard"] = {
        "events": len(evidence.yard),
        "stood": len(fold.stood),
        "refused_by_the_fold": len(fold.refused),
        "sent_twice_same_id": fold.repeated_events,
        "steps_repeated": sum(1 for n in steps.values() if n > 1),
    }
    _dispatch_agrees(verdict, yard, live)


def _dispatch_agrees(verdict: Verdict, yard: Yard, live: Live) -> None:
    problems: list[str] = []
    if live.assignments is None or live.trucks is None:
        problems.append("dispatch did not answer for its assignments and trucks")
    else:
        mine = {
            a.assignment_id: yard.is_standing(a.assignment_id)
            for a in yard.assignments(include_taken_back=True)
        }
        theirs = {a["assignment_id"]: bool(a["standing"]) for a in live.assignments}
        problems += [
            f"assignment {key}: the log makes it {_standing(mine.get(key))}, dispatch shows "
            f"{_standing(theirs.get(key))}"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]
        visits = {v.visit_id: v.status.value for v in yard.visits(include_departed=True)}
        shown = {t["visit_id"]: t["status"] for t in live.trucks}
        problems += [
            f"visit {key}: the log makes it {visits.get(key)}, dispatch shows {shown.get(key)}"
            for key in sorted(set(visits) | set(shown))
            if visits.get(key) != shown.get(key)
        ]
    verdict.add(
        "dispatch agrees with its log",
        problems,
        "dispatch's assignments and trucks are what dispatch.yard folds to",
        "{n} difference(s) between dispatch and the fold of dispatch.yard",
    )


def _standing(value: bool | None) -> str:
    return "absent" if value is None else ("standing" if value else "taken back")
