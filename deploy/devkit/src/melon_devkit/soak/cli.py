"""The kill soak's command line, its run and its report.

A run: a broker and a hall of its own (free ports on 127.0.0.1, a folder of its own), the day's
clients and the chaos thread side by side, then a settling time in which the hall catches up and
the invariants are judged again until they hold or the time is up, ``melon-ingest audit verify``,
and the report, printed and as JSON. The exit status is 0 only if every invariant holds.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx

from dispatch.domain.yard import normalize_plate
from melon_contracts.admin import ensure_topics
from melon_devkit.hall import Hall, HallError, Ports
from melon_devkit.kafka import Broker, BrokerError, free_port
from melon_devkit.paths import var_dir
from melon_devkit.simday.cli import hall_today
from melon_devkit.simday.plan import Lot, Truck, make_plan
from melon_devkit.simday.runner import Urls
from melon_devkit.soak import clients
from melon_devkit.soak.chaos import (
    BROKER,
    KILLABLE,
    Chaos,
    Kill,
    all_healthy,
    ensure_probe_topic,
    kill_schedule,
)
from melon_devkit.soak.clients import Acks, Day, Deal
from melon_devkit.soak.invariants import Live, Verdict, judge, read_evidence
from pricing.replay import Report, check

STATUS_EVERY_S = 30.0
LOTS_UNTIL = 0.80
BIDS_FROM, BIDS_UNTIL = 0.03, 0.88
TRUCKS_FROM, TRUCKS_UNTIL = 0.05, 0.70
AMEND_SHARE, CANCEL_SHARE = 0.2, 0.15
"""Of the bids other than the amending merchant's, those amended (price only) or cancelled."""
CHANGE_AFTER = (0.03, 0.12)
"""A change follows its bid by this share of the run."""

EPILOG = """\
what happens:
  hall     a broker and the hall (scale simulator, gateway, ingest, pricing worker and API,
           dispatch) start in --home on free ports of 127.0.0.1, with the demo accounts
  day      a simulated day's lots are weighed on ws-1 and ws-2 through the scale simulator and
           ingest's API, spread over the first 80 % of --duration; merchants place its bids
           (with demo tokens), amend some (price only) and cancel some; trucks check in at the
           gate; the yard office assigns the suggested loads (every other one by hand) and sends
           trucks through a bay and out. Clients retry on no answer and 5xx with the same ids,
           and record only what a 2xx acknowledged
  chaos    --kills SIGKILLs dealt out over ingest, gateway, pricing-worker, pricing-api and
           dispatch, and --broker-kills SIGKILLs of the broker, at seeded moments; each is
           started again after a short seeded pause, and timed until it answers again
  checks   once the hall has settled, from the topics (plain consumers): every acknowledged
           weighing, bid, amendment, cancel, check-in, assignment and truck move present once
           in effect; tickets gapless per station; no lot oversold, no bid overfilled, no trade
           on two standing assignments; dispatch agrees with its log; no dead letters;
           melon-ingest audit verify; the replay of book.commands equals the topics

output: a line per kill and a status line every 30 s, then the invariants, the operations by
kind, kills and recovery seconds, lost and duplicated; --json writes the same as JSON. Exit
status 0 only if every invariant holds, 1 if one does not, 2 if the hall could not be started.

examples:
  python -m melon_devkit.soak                                   # make soak's full size
  python -m melon_devkit.soak --kills 4 --broker-kills 1 --duration 100 --json soak.json
  python -m melon_devkit.soak --schedule-only --seed 3          # the kills, nothing started
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m melon_devkit.soak",
        description=(sys.modules[__package__ or ""].__doc__ or "").replace("``", "").strip(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = p.add_argument_group("the size")
    size.add_argument("--seed", type=int, default=1, help="kills and day (default %(default)s)")
    size.add_argument(
        "--kills", type=int, default=15, help="service kills in all (default %(default)s)"
    )
    size.add_argument(
        "--broker-kills", type=int, default=2, help="broker kills (default %(default)s)"
    )
    size.add_argument(
        "--duration",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="the day's length in real seconds; the kills fall within it (default %(default)s)",
    )
    size.add_argument("--lots", type=int, help="lots to weigh (default: one per 6 s of the day)")
    size.add_argument("--bids", type=int, help="bids to place (default: about 0.45 a lot)")
    size.add_argument("--trucks", type=int, help="trucks at the gate (default: one per 8 lots)")
    run = p.add_argument_group("the run")
    run.add_argument(
        "--home",
        type=Path,
        help="folder for the broker's data and the hall's logs (default var/soak/<date-time>)",
    )
    run.add_argument("--json", type=Path, help="also write the report to this file")
    run.add_argument(
        "--op-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a client retries one operation (default %(default)s)",
    )
    run.add_argument(
        "--restart-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a restarted process has to answer (default %(default)s)",
    )
    run.add_argument(
        "--settle-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long the hall has to catch up after the day (default %(default)s)",
    )
    run.add_argument(
        "--schedule-only",
        action="store_true",
        help="print the kill schedule and the day's size as JSON; start nothing",
    )
    return p


@dataclass(frozen=True)
class Size:
    seed: int
    kills: int
    broker_kills: int
    duration_s: float
    lots: int
    bids: int
    trucks: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Size:
        lots = args.lots if args.lots is not None else max(6, round(args.duration / 6))
        return cls(
            seed=args.seed,
            kills=args.kills,
            broker_kills=args.broker_kills,
            duration_s=args.duration,
            lots=lots,
            bids=args.bids if args.bids is not None else max(4, round(lots * 0.45)),
            trucks=args.trucks if args.trucks is not None else max(2, round(lots / 8)),
        )


@dataclass(frozen=True)
class Workload:
    """The day's operations, each at its moment in seconds after the start."""

    lots: dict[str, list[tuple[float, Lot]]]
    """Station -> its lots."""
    deals: list[Deal]
    trucks: list[tuple[float, Truck]]
    plates: frozenset[str]


def workload(size: Size, day: date) -> Workload:
    """The simulated day's plan, its lots, bids and trucks spread evenly over the run (the plan's
    morning rush would leave the rest of the run without weighings to kill services under)."""
    plan = make_plan(day, size.seed, lots=size.lots, bids=size.bids, trucks=size.trucks)
    rng = random.Random(f"melon-hall soak workload {size.seed}")
    span = size.duration_s
    lots: dict[str, list[tuple[float, Lot]]] = {}
    for index, lot in enumerate(plan.lots):
        at = index / max(1, len(plan.lots)) * LOTS_UNTIL * span
        lots.setdefault(lot.station, []).append((at, lot))
    deals: list[Deal] = []
    bids = sorted(plan.bids, key=lambda bid: (bid.at_s, bid.bid_id))
    for index, bid in enumerate(bids):
        at = (BIDS_FROM + index / max(1, len(bids)) * (BIDS_UNTIL - BIDS_FROM)) * span
        deals.append(Deal(at, "place", bid))
        later = at + rng.uniform(*CHANGE_AFTER) * span
        if bid.amend_price_fen_per_kg is not None:
            deals.append(Deal(later, "amend", bid, bid.amend_price_fen_per_kg))
        elif bid.cancel_at_s is not None:
            deals.append(Deal(later, "cancel", bid))
        else:
            roll = rng.random()
            if roll < AMEND_SHARE:
                price = bid.price_fen_per_kg + rng.choice((5, 10, 15, 20))
                deals.append(Deal(later, "amend", bid, price))
            elif roll < AMEND_SHARE + CANCEL_SHARE:
                deals.append(Deal(later, "cancel", bid))
    trucks = [
        (
            (TRUCKS_FROM + index / max(1, len(plan.trucks)) * (TRUCKS_UNTIL - TRUCKS_FROM)) * span,
            truck,
        )
        for index, truck in enumerate(sorted(plan.trucks, key=lambda t: t.arrives_at_s))
    ]
    plates = frozenset(normalize_plate(truck.plate) for truck in plan.trucks)
    return Workload(lots, deals, trucks, plates)


class Out:
    """Progress lines with the seconds since the day started, safe from any thread."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.began = time.monotonic()
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(f"{time.monotonic() - self.began:7.1f}s  {text}", file=self.stream, flush=True)

    def line(self, text: str = "") -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)


def main(argv: Sequence[str] | None = None, stream: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    size = Size.of(args)
    out = Out(stream or sys.stdout)
    schedule = kill_schedule(size.seed, size.kills, size.broker_kills, size.duration_s)
    if args.schedule_only:
        json.dump(
            {"size": size.__dict__, "kills": [kill.__dict__ for kill in schedule]},
            out.stream,
            indent=2,
        )
        out.line()
        return 0
    # SIGTERM (a CI runner's timeout) ends the soak like Ctrl-C: the hall and broker are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    home = args.home or var_dir() / "soak" / datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        return Soak(size, schedule, home, args, out).run()
    except KeyboardInterrupt:
        out.line("soak: interrupted")
        return 130


class Soak:
    def __init__(
        self,
        size: Size,
        schedule: list[Kill],
        home: Path,
        args: argparse.Namespace,
        out: Out,
    ) -> None:
        self.size = size
        self.schedule = schedule
        self.home = home
        self.args = args
        self.out = out
        self.broker = Broker(home=home / "kafka", port=free_port(), controller_port=free_port())
        self.hall = Hall(bootstrap=self.broker.bootstrap, home=home / "hall", ports=Ports.free())
        self.acks = Acks()

    def run(self) -> int:
        size, out = self.size, self.out
        out.line(
            f"Melon Hall kill soak, seed {size.seed}: {size.lots} lots, {size.bids} bids, "
            f"{size.trucks} trucks over {size.duration_s:.0f} s; {size.kills} service kills, "
            f"{size.broker_kills} broker kills; in {self.home}"
        )
        began = time.monotonic()
        try:
            try:
                took = self.broker.start()
                ensure_topics(self.broker.bootstrap)
                ensure_probe_topic(self.broker.bootstrap)
                self.hall.make_demo_accounts()
                took += self.hall.start()
            except (BrokerError, HallError) as exc:
                out.line(f"soak: the hall did not start: {exc}")
                return 2
            out.line(f"broker {self.broker.bootstrap} and hall ready in {took:.1f} s")
            day, chaos = self.day()
            verdict, replay, audit, settle_s = self.settle(day, chaos)
            report = self.report(day, chaos, verdict, replay, audit, settle_s, began)
        finally:
            self.hall.stop()
            self.broker.stop()
        for text in readable(report):
            out.line(text)
        if self.args.json:
            self.args.json.parent.mkdir(parents=True, exist_ok=True)
            self.args.json.write_text(
                json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
            )
        return 0 if verdict.ok else 1

    def day(self) -> tuple[Day, Chaos]:
        """Run the clients and the chaos side by side until both are through."""
        size, out = self.size, self.out
        today = hall_today()
        plan = workload(size, today)
        began = time.monotonic()
        out.began = began
        urls = Urls.local(self.hall.ports)
        expires = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        day = Day(
            urls=urls,
            acks=self.acks,
            began=began,
            op_timeout_s=self.args.op_timeout,
            harvest_date=today,
            expires_at=expires,
            say=out.say,
            plates=plan.plates,
            leave_after_s=max(20.0, size.duration_s / 6),
        )
        chaos = Chaos(
            self.hall,
            self.broker,
            self.schedule,
            began,
            out.say,
            restart_timeout_s=self.args.restart_timeout,
        )
        supply: list[tuple[str, Callable[[], None]]] = [
            *(
                (f"station {name}", lambda lots=lots: clients.station(day, lots))
                for name, lots in sorted(plan.lots.items())
            ),
            ("merchants", lambda: clients.merchants(day, plan.deals)),
            ("gate", lambda: clients.gate(day, plan.trucks)),
        ]
        threads = [threading.Thread(target=act, name=name, daemon=True) for name, act in supply]
        yard = threading.Thread(target=clients.yard_office, args=(day,), name="yard", daemon=True)
        chaos.start()
        for thread in [*threads, yard]:
            thread.start()
        hard_deadline = began + size.duration_s + 3 * self.args.op_timeout
        next_status = began + STATUS_EVERY_S
        while time.monotonic() < hard_deadline:
            if not day.supply_done.is_set() and not any(t.is_alive() for t in threads):
                day.supply_done.set()
                out.say("the day's lots, bids and trucks are through; the yard finishes")
            if day.supply_done.is_set() and not yard.is_alive() and chaos.done.is_set():
                break
            if time.monotonic() >= next_status:
                out.say(status_line(self.acks))
                next_status += STATUS_EVERY_S
            time.sleep(0.5)
        else:
            day.completed = False
            out.say("the run's deadline passed: the clients and the chaos stop")
        day.stop.set()
        chaos.stop.set()
        for thread in [*threads, yard, chaos]:
            thread.join(timeout=30)
        out.say(status_line(self.acks))
        return day, chaos

    def settle(
        self, day: Day, chaos: Chaos
    ) -> tuple[Verdict, Report | None, tuple[int, str], float]:
        """Judge again until everything the hall owes has arrived, or the time is up."""
        began = time.monotonic()
        deadline = began + self.args.settle_timeout
        bootstrap = self.broker.bootstrap
        if not all_healthy(self.hall, max(1.0, deadline - time.monotonic())):
            self.out.say("not every service is healthy after the day")
        verdict: Verdict | None = None
        replay: Report | None = None
        while True:
            try:
                replay = check(bootstrap)
                evidence = read_evidence(bootstrap)
                live = read_live(day.urls, self.acks)
            except Exception as exc:  # the broker may still be catching up after the day
                self.out.say(f"reading the topics failed ({type(exc).__name__}: {exc}); again")
            else:
                verdict = judge(self.acks, evidence, live, replay=replay)
                if verdict.caught_up:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(3)
        audit = audit_verify(bootstrap)
        evidence = read_evidence(bootstrap)
        live = read_live(day.urls, self.acks)
        verdict = judge(
            self.acks,
            evidence,
            live,
            audit=audit,
            replay=replay,
            restarts=chaos.log.snapshot(),
            day_completed=day.completed,
        )
        return verdict, replay, audit, time.monotonic() - began

    def report(
        self,
        day: Day,
        chaos: Chaos,
        verdict: Verdict,
        replay: Report | None,
        audit: tuple[int, str],
        settle_s: float,
        began: float,
    ) -> dict[str, Any]:
        acks = self.acks
        restarts = chaos.log.snapshot()
        planned = [r for r in restarts if r.planned]
        recovery: dict[str, list[float]] = {}
        for restart in restarts:
            if restart.recovery_s is not None:
                recovery.setdefault(restart.target, []).append(restart.recovery_s)
        brokers = [
            {
                "at_s": r.at_s,
                "down_s": r.down_s,
                "answering_s": r.answering_s,
                "write_s": r.recovery_s,
                "all_healthy_s": r.healthy_s,
            }
            for r in restarts
            if r.target == BROKER
        ]
        for entry, back in zip(brokers, chaos.broker_back, strict=False):
            first = next((at for at in sorted(acks.acked_at) if at > back), None)
            entry["first_acknowledged_write_s"] = None if first is None else round(first - back, 2)
        with acks.lock:
            operations = {
                "acknowledged": {
                    "weighing": len(acks.weighings),
                    "bid": len(acks.bids),
                    "amend": len(acks.amends),
                    "cancel": len(acks.cancels),
                    "check_in": len(acks.check_ins),
                    "assignment": len(acks.assignments),
                    "move": len(acks.moves),
                },
                "weighings_answered_with_existing_ticket": sum(
                    1 for w in acks.weighings.values() if w.repeated
                ),
                "refused": dict(sorted(acks.refused.items())),
                "ambiguous": len(acks.ambiguous),
                "ambiguous_notes": acks.ambiguous[:100],
                "gave_up": dict(sorted(acks.gave_up.items())),
                "sent_again": dict(sorted(acks.sent_again.items())),
                "server_errors": dict(sorted(acks.server_errors.items())),
            }
        return {
            "ok": verdict.ok,
            "seed": self.size.seed,
            "size": self.size.__dict__,
            "home": str(self.home),
            "logs": str(self.hall.home / "log"),
            "took_s": round(time.monotonic() - began, 1),
            "day_s": round(time.monotonic() - day.began - settle_s, 1),
            "settle_s": round(settle_s, 1),
            "operations": operations,
            "kills": dict(Counter(r.target for r in planned if r.target != BROKER)),
            "broker_kills": sum(1 for r in planned if r.target == BROKER),
            "unplanned_restarts": sum(1 for r in restarts if not r.planned),
            "recovery_s": recovery,
            "recovery_summary": {
                target: {
                    "min": min(times),
                    "median": round(statistics.median(times), 2),
                    "max": max(times),
                }
                for target, times in recovery.items()
            },
            "broker": brokers,
            "lost": verdict.lost,
            "duplicated": verdict.duplicated,
            "lost_total": verdict.lost_total,
            "duplicated_total": verdict.duplicated_total,
            "invariants": [finding.to_dict() for finding in verdict.findings],
            "replay": None
            if replay is None
            else {
                "matches": replay.matches,
                "commands": replay.commands,
                "unusable": replay.unusable,
                "trades": replay.trades,
                "differences": replay.differences[:100],
            },
            "audit": {"exit_code": audit[0], "output": audit[1]},
            "restarts": [r.to_dict() for r in restarts],
            "info": verdict.info,
        }


def status_line(acks: Acks) -> str:
    counts = acks.acknowledged()
    with acks.lock:
        again = sum(acks.sent_again.values())
    done = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    return f"acknowledged: {done}; requests sent again {again}"


def read_live(urls: Urls, acks: Acks) -> Live:
    """The services' own answers, to hold against their logs."""
    with acks.lock:
        lot_ids = sorted(acks.weighings)
    live = Live()
    with httpx.Client(timeout=10) as http:
        for lot_id in lot_ids:
            try:
                response = http.get(f"{urls.ingest}/lots/{lot_id}")
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                live.lots[lot_id] = response.json()
        try:
            live.assignments = http.get(
                f"{urls.dispatch}/assignments", params={"all": "true"}
            ).json()
            live.trucks = http.get(f"{urls.dispatch}/trucks", params={"departed": "true"}).json()
        except (httpx.HTTPError, ValueError):
            live.assignments = live.trucks = None
    return live


def audit_verify(bootstrap: str) -> tuple[int, str]:
    """``melon-ingest audit verify`` against the soak's broker: its exit code and output."""
    command = [sys.executable, "-m", "ingest", "audit", "verify", "--bootstrap", bootstrap]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return 124, "melon-ingest audit verify did not finish within 120 s"
    return result.returncode, (result.stdout + result.stderr).strip()


def _seconds(times: Sequence[float]) -> str:
    if not times:
        return "-"
    return f"{min(times):.1f}/{statistics.median(times):.1f}/{max(times):.1f}"


def readable(report: dict[str, Any]) -> list[str]:
    """The report for people: the invariants first, then the figures behind them."""
    lines = ["", "Invariants"]
    for finding in report["invariants"]:
        mark = "ok  " if finding["ok"] else "FAIL"
        lines.append(f"  {mark}  {finding['name']}: {finding['detail']}")
        lines += [f"          - {example}" for example in finding["examples"]]
    ops = report["operations"]
    lines.append("")
    lines.append(
        "Operations acknowledged: "
        + ", ".join(f"{kind} {n}" for kind, n in ops["acknowledged"].items())
    )
    lines.append(
        f"  {ops['weighings_answered_with_existing_ticket']} weighing(s) answered with the ticket "
        f"an unanswered try had recorded; requests sent again: "
        + (", ".join(f"{k} {n}" for k, n in ops["sent_again"].items() if n) or "none")
    )
    lines.append(
        "  refused: " + (", ".join(f"{k} {n}" for k, n in ops["refused"].items()) or "nothing")
    )
    lines.append(
        f"  ambiguous (a refusal after a lost answer): {ops['ambiguous']}; gave up: "
        + (", ".join(f"{k} {n}" for k, n in ops["gave_up"].items()) or "nothing")
        + "; 5xx answers: "
        + (", ".join(f"{k} {n}" for k, n in ops["server_errors"].items()) or "none")
    )
    kills = ", ".join(f"{name} {report['kills'].get(name, 0)}" for name in KILLABLE)
    lines.append(
        f"Kills: {kills}; broker {report['broker_kills']}; unplanned restarts "
        f"{report['unplanned_restarts']}"
    )
    recovery = report["recovery_s"]
    lines.append(
        "Recovery seconds (min/median/max): "
        + ", ".join(f"{name} {_seconds(recovery.get(name, []))}" for name in [*KILLABLE, BROKER])
    )
    for entry in report["broker"]:
        lines.append(
            f"  broker killed at {entry['at_s']:.0f} s, down {entry['down_s']:.1f} s: answering "
            f"{entry['answering_s']} s after its restart, a write acknowledged after "
            f"{entry['write_s']} s, every service healthy after "
            f"{entry['all_healthy_s']} s, first client write acknowledged after "
            f"{entry.get('first_acknowledged_write_s')} s"
        )
    lines.append(f"Lost: {report['lost_total']}   Duplicated: {report['duplicated_total']}")
    invariants = report["invariants"]
    failed = [f for f in invariants if not f["ok"]]
    held = (
        f"all {len(invariants)} invariants hold"
        if not failed
        else f"{len(failed)} of {len(invariants)} invariants FAILED"
    )
    lines.append(f"Result: {held} ({report['took_s']:.0f} s; logs in {report['logs']})")
    return lines
