"""The command line of the simulated day, and the short day ``make run`` feeds its hall with."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from melon_devkit.hall import Ports
from melon_devkit.simday.plan import HOUR, DayPlan, DispatchPolicy, clock_text, make_plan
from melon_devkit.simday.runner import COOPERATIVE, Refused, Summary, Urls, auth, run_day

HALL_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
DEFAULT_SEED = 1
DEMO_SEED = 0
"""``make run``'s day has a seed of its own, so a day run by hand with the default seed does
not meet its ids."""
HOSTS = ("127.0.0.1", "localhost")

EPILOG = """\
what happens:
  lots     arrive in a morning rush (most from 07:00 to 09:00, none after noon); each is weighed
           on the platform scale free first: the simulated scale is loaded with the gross
           weight, the operator waits for stable, scans the tag with the sample (Brix and weight
           of each sampled fruit, defects), prints the ticket, unloads and waits for zero
  bids     merchants bid following the supply: merchant-xian a little above the reserve for
           volume, merchant-lanzhou extra grade with cold chain, shop-online-01 small cold-chain
           lots for Hangzhou and Shanghai, merchant-chengdu class II bargains, merchant-zhengzhou
           low and then amends or cancels; refused for credit, a merchant bids what is left
  trucks   come to the gate through the day, about a third reefers at 8.0 °C; every
           --dispatch-every minutes the yard office accepts the suggested loads for its trucks
           and sends full enough ones (or ones that waited 90 min) to a free bay; loading takes
           10 min plus 4 min a tonne, then the paperwork, then the truck leaves
  close    merchants cancel what is left of their bids, the cooperative withdraws unsold lots,
           the yard loads and sends off every truck (--no-close leaves the books as they are)

ids carry the date and the seed (lot MQ-261130-7-0001, bid B-261130-7-001, plates from both), so
another day never reuses them, and running the same seed and date again repeats nothing the
services would take twice: a lot tag scanned again returns its ticket, a bid id is placed once,
a truck that came through the gate is not checked in again. The same seed and date with other
--lots, --bids or --trucks is another day under the same ids: choose another seed for it.

output: a line for each thing done, with the hall time and who did it (ws-1, ws-2, bids, gate,
yard, close), refusals with the hall's code and reason; then the summary: lots and kg by grade,
bids, trades and kg sold, unsold lots, trucks and their fill, refusals by code. Exit status 0 when
the day ran through, 1 when it did not (the deadline passed, a service stopped answering).

examples:
  python -m melon_devkit.simday --plan-only --lots 20 | less
  python -m melon_devkit.simday --seed 7 --speed 120
  python -m melon_devkit.simday --lots 6 --bids 3 --trucks 2 --speed max
"""


def parse_speed(text: str) -> float | None:
    """``max`` (None: as fast as the hall takes it) or simulated seconds per real second."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'max'") from None
    if not (speed > 0 and math.isfinite(speed)):
        raise argparse.ArgumentTypeError("the speed is more than 0")
    return speed


def local_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "http" or parts.hostname not in HOSTS:
        raise argparse.ArgumentTypeError(f"{text!r}: the hall is reached on http://127.0.0.1 only")
    return text.rstrip("/")


def hall_today() -> date:
    return datetime.now(HALL_TIME).date()


def default_deadline_s(plan: DayPlan, speed: float | None) -> float:
    """Long enough for the day at its speed, with room for the close."""
    if speed is None:
        return 120 + 8 * len(plan.lots) + 3 * len(plan.bids) + 15 * len(plan.trucks)
    return 300 + (plan.closes_at_s + 3 * HOUR - plan.starts_at_s) / speed


def parser() -> argparse.ArgumentParser:
    ports = Ports()
    p = argparse.ArgumentParser(
        prog="python -m melon_devkit.simday",
        description=(sys.modules[__package__ or ""].__doc__ or "").replace("``", "").strip(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    day = p.add_argument_group("the day")
    day.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="the simulated day, YYYY-MM-DD (default: today in hall time, UTC+8)",
    )
    day.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="the same seed and date give the same day and ids (default %(default)s; make run's "
        f"demo day is seed {DEMO_SEED})",
    )
    day.add_argument("--lots", type=int, default=80, help="farmers' lots (default %(default)s)")
    day.add_argument("--bids", type=int, default=30, help="merchants' bids (default %(default)s)")
    day.add_argument("--trucks", type=int, default=10, help="trucks (default %(default)s)")
    day.add_argument(
        "--dispatch-every",
        type=int,
        default=15,
        metavar="MINUTES",
        help="simulated minutes between the yard office's rounds (default %(default)s)",
    )
    run = p.add_argument_group("the run")
    run.add_argument(
        "--speed",
        type=parse_speed,
        default=60.0,
        metavar="N|max",
        help="simulated seconds per real second: 1 is real time, 60 a minute a second "
        "(default), max as fast as the hall takes it",
    )
    run.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="real seconds after which the run stops (default: from the day and the speed)",
    )
    run.add_argument(
        "--no-close", action="store_true", help="leave resting bids and unsold lots on the books"
    )
    run.add_argument(
        "--plan-only", action="store_true", help="print the plan as JSON; do not touch the hall"
    )
    run.add_argument("--summary-json", type=Path, help="also write the summary to this file")
    hall = p.add_argument_group("the hall (127.0.0.1 only; defaults: the ports of make run)")
    for name, port in (
        ("ingest", ports.ingest),
        ("pricing", ports.pricing),
        ("dispatch", ports.dispatch),
        ("scales", ports.scales),
    ):
        hall.add_argument(
            f"--{name}", type=local_url, default=f"http://127.0.0.1:{port}", metavar="URL"
        )
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        plan = make_plan(
            args.date or hall_today(),
            args.seed,
            lots=args.lots,
            bids=args.bids,
            trucks=args.trucks,
            dispatch=DispatchPolicy(every_s=max(1, args.dispatch_every) * 60),
        )
    except ValueError as exc:
        print(f"simday: {exc}", file=sys.stderr)
        return 2
    if args.plan_only:
        json.dump(plan.to_dict(), out, ensure_ascii=False, indent=2)
        print(file=out)
        return 0
    urls = Urls(args.ingest, args.pricing, args.dispatch, args.scales)
    problem = hall_problem(urls, plan)
    if problem:
        print(f"simday: {problem}", file=sys.stderr)
        return 1
    try:
        summary = run(plan, urls, args.speed, args.deadline, out, close=not args.no_close)
    except (httpx.HTTPError, Refused) as exc:
        print(f"simday: the hall stopped answering: {exc}", file=sys.stderr)
        return 1
    if args.summary_json:
        args.summary_json.write_text(
            json.dumps(summary.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return 0 if summary.completed else 1


def run(
    plan: DayPlan,
    urls: Urls,
    speed: float | None,
    deadline_s: float | None,
    out: TextIO,
    close: bool = True,
) -> Summary:
    """Announce, run and sum up a day."""
    deadline = deadline_s or default_deadline_s(plan, speed)
    print(
        f"simday: {plan.date} seed {plan.seed}: {len(plan.lots)} lots, {len(plan.bids)} bids, "
        f"{len(plan.trucks)} trucks; hall time {clock_text(plan.starts_at_s)} to the close at "
        f"{clock_text(plan.closes_at_s)}; speed {'max' if speed is None else f'{speed:g}'}, "
        f"deadline {deadline:.0f} s",
        file=out,
        flush=True,
    )
    summary = run_day(plan, urls, speed=speed, deadline_s=deadline, out=out, close=close)
    print("\n".join(summary.lines()), file=out, flush=True)
    return summary


def hall_problem(urls: Urls, plan: DayPlan) -> str | None:
    """Why the day cannot run against this hall, or None."""
    checks = {
        "ingest": f"{urls.ingest}/healthz",
        "pricing": f"{urls.pricing}/healthz",
        "dispatch": f"{urls.dispatch}/healthz",
        "the scale simulator": f"{urls.scales}/scales",
    }
    with httpx.Client(timeout=5) as http:
        for name, url in checks.items():
            try:
                response = http.get(url)
            except httpx.HTTPError as exc:
                return f"{name} does not answer at {url} ({exc}); is the hall up (make run)?"
            if response.status_code != 200:
                return f"{name} is not ready at {url}: {response.status_code} {response.text}"
        scales = http.get(checks["the scale simulator"]).json()["scales"]
        missing = sorted({s.station for s in plan.stations} - {s["station"] for s in scales})
        if missing:
            return f"the scale simulator has no {', '.join(missing)}"
        for account in sorted({bid.merchant_id for bid in plan.bids} | {COOPERATIVE}):
            if http.get(f"{urls.pricing}/me", headers=auth(account)).status_code != 200:
                return (
                    f"pricing has no demo account {account} (with token demo-{account}); "
                    "make run makes them"
                )
    return None


def demo_day(urls: Urls, out: TextIO) -> Summary | None:
    """``make run``'s demo feed: a short day (20 lots, 6 bids, 4 trucks) as fast as the hall
    takes it, about a minute. Today's date and a fixed seed: starting the hall again the same
    day repeats nothing. None, with the reason printed, if the hall is not fit for it."""
    plan = make_plan(hall_today(), DEMO_SEED, lots=20, bids=6, trucks=4)
    try:
        problem = hall_problem(urls, plan)
        if problem:
            print(f"demo: no simulated day: {problem}", file=out, flush=True)
            return None
        return run(plan, urls, None, None, out)
    except (httpx.HTTPError, Refused) as exc:
        # The hall stays up for people to look at even when its demo feed stumbled.
        print(f"demo: the simulated day stopped: {exc}", file=out, flush=True)
        return None
