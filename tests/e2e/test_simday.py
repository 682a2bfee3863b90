"""A tiny simulated day against the hall's services, through their front doors only.

Given the session's hall, when ``python -m melon_devkit.simday`` runs six lots, three bids and two
trucks as fast as the hall takes them, then the lots are weighed and graded, merchants traded,
a truck left with the goods, and the summary's figures are what the services report. Running the
same day again repeats nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from melon_contracts.units import kg_to_g
from melon_devkit.hall import Hall
from melon_devkit.simday import main, make_plan
from melon_devkit.simday.plan import DayPlan

from .conftest import merchant

pytestmark = pytest.mark.e2e

DAY, SEED = date(2026, 8, 12), 3
SIZE = {"lots": 6, "bids": 3, "trucks": 2}


def simulate(hall: Hall, summary: Path) -> tuple[int, str, float]:
    out = io.StringIO()
    began = time.monotonic()
    args = [f"--date={DAY}", f"--seed={SEED}", "--speed=max", "--deadline=80"]
    args += [f"--{key}={value}" for key, value in SIZE.items()]
    args += [f"--{name}={hall.url(name)}" for name in ("ingest", "pricing", "dispatch", "scales")]
    code = main([*args, f"--summary-json={summary}"], out=out)
    print(out.getvalue())
    return code, out.getvalue(), time.monotonic() - began


@pytest.fixture(scope="module")
def plan() -> DayPlan:
    return make_plan(DAY, SEED, **SIZE)


@pytest.fixture(scope="module")
def first_run(hall: Hall, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    path = tmp_path_factory.mktemp("simday") / "summary.json"
    code, output, took = simulate(hall, path)
    assert code == 0, output
    assert took < 90
    return json.loads(path.read_text(encoding="utf-8")), output


def our_trades(hall: Hall, plan: DayPlan) -> list[dict[str, Any]]:
    ours = {bid.bid_id for bid in plan.bids}
    return [
        trade
        for account in sorted({bid.merchant_id for bid in plan.bids})
        for trade in httpx.get(
            f"{hall.url('pricing')}/me/trades", headers=merchant(account), timeout=10
        ).json()
        if trade["bid_id"] in ours
    ]


def test_a_tiny_day_weighs_sells_and_ships_through_the_front_doors(
    hall: Hall, plan: DayPlan, first_run: tuple[dict[str, Any], str]
) -> None:
    summary, output = first_run
    ingest, dispatch = hall.url("ingest"), hall.url("dispatch")

    # The lots were weighed at the planned gross weights and graded as the plan foresaw
    lots = [httpx.get(f"{ingest}/lots/{lot.lot_id}", timeout=10).json() for lot in plan.lots]
    for lot, seen in zip(plan.lots, lots, strict=True):
        assert seen["status"] == "graded"
        assert (seen["gross_g"], seen["net_g"], seen["crates"]) == (
            lot.gross_g,
            lot.net_g,
            lot.crates,
        )
        assert seen["grade"]["grade"] == lot.expected_grade
        assert lot.lot_id in output
    by_grade: Counter[str] = Counter()
    for seen in lots:
        by_grade[seen["grade"]["grade"]] += seen["net_g"]
    assert summary["lots_weighed"] == len(plan.lots)
    assert summary["weighed_g_by_grade"] == dict(by_grade)

    # Merchants traded, and the summary counts what their accounts show
    trades = our_trades(hall, plan)
    assert trades
    assert summary["trades"] == len(trades)
    assert summary["sold_g"] == sum(kg_to_g(t["weight_kg"]) for t in trades)

    # At least one truck left with the day's goods, and the summary says what each carried
    plates = {truck.plate for truck in plan.trucks}
    departed = [
        t
        for t in httpx.get(f"{dispatch}/trucks", params={"departed": "true"}, timeout=10).json()
        if t["plate"] in plates and t["status"] == "departed"
    ]
    assert any(t["loaded_g"] > 0 for t in departed)
    assert sorted((t["plate"], t["loaded_g"], t["capacity_g"]) for t in departed) == sorted(
        (t["plate"], t["loaded_g"], t["capacity_g"])
        for t in summary["trucks"]
        if t["status"] == "departed"
    )
    shipped = {
        line["trade_id"]
        for truck in departed
        for assignment in httpx.get(
            f"{dispatch}/assignments", params={"plate": truck["plate"]}, timeout=10
        ).json()
        for line in assignment["lines"]
    }
    assert shipped & {t["trade_id"] for t in trades}

    # At the close nothing of the day is left resting, and the run had no errors
    statuses = [
        bid["status"]
        for account in sorted({bid.merchant_id for bid in plan.bids})
        for bid in httpx.get(
            f"{hall.url('pricing')}/me/bids", headers=merchant(account), timeout=10
        ).json()
        if bid["bid_id"] in {b.bid_id for b in plan.bids}
    ]
    assert len(statuses) == len(plan.bids) and "resting" not in statuses
    assert summary["errors"] == []
    for plate in plates:
        truck = httpx.get(f"{dispatch}/trucks/{quote(plate)}", timeout=10).json()
        assert truck["status"] == "departed"


def test_running_the_same_day_again_repeats_nothing(
    hall: Hall, plan: DayPlan, first_run: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    before, _ = first_run
    trades_before = our_trades(hall, plan)

    code, output, _ = simulate(hall, tmp_path / "again.json")

    assert code == 0, output
    again = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert again["lots_scanned_again"] == len(plan.lots)
    for key in ("lots_weighed", "weighed_g_by_grade", "trades", "sold_g", "trucks"):
        assert again[key] == before[key], key
    assert our_trades(hall, plan) == trades_before
    assert output.count("already came through the gate") == len(plan.trucks)
