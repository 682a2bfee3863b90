"""How well, and how fast, the two load planners fill a day's yard.

    python bench/bench_loads.py [--shipments 300] [--trucks 40] [--seed 7] [--time-limit 10]
                                [--workers 8] [--json out.json]

A seeded yard: shipments of 0.2-8 t, about a third of them cold chain, bound for one of six
destinations and waiting up to ten hours; trucks of 5-30 t, about a third refrigerated, each
serving one to three destinations or (one in four) going anywhere. There is more freight than
room, so the planners have to choose. With ``--trucks 70`` the room about equals the freight: the
day when the choice of which shipment goes where decides how much is left behind.

Rows: ``ffd`` (first-fit-decreasing), ``cp-sat`` (the optimiser on one worker, bounded by
``--time-limit`` seconds, which includes building its model and its FFD hint) and, unless
``--workers`` is 1, ``cp-sat-xN`` (the same with N interleaved workers). Per row: mean fill ratio
over used trucks, loaded kg, shipments left behind, their total wait in hours, the score
(loaded g, wait of loaded shipments in s) and the wall time of the plan. Every plan passes
``Plan.check`` before it is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import common

from dispatch.adapters.optimiser import optimise
from dispatch.domain.loads import Plan, Shipment, Truck, first_fit_decreasing, score

DESTINATIONS = ("Lanzhou", "Xi'an", "Urumqi", "Hami", "Chengdu", "Xining")
DAY_S = 36_000


def yard(seed: int, shipments: int, trucks: int) -> tuple[list[Shipment], list[Truck]]:
    rng = random.Random(seed)
    waiting = [
        Shipment(
            shipment_id=f"s{i:04d}",
            weight_g=rng.randint(200_000, 8_000_000),
            cold_chain=rng.random() < 1 / 3,
            destination=rng.choice(DESTINATIONS),
            waiting_since_s=rng.randint(0, DAY_S),
        )
        for i in range(shipments)
    ]
    standing = [
        Truck(
            plate=f"甘A{i:05d}",
            capacity_g=rng.randint(5_000_000, 30_000_000),
            refrigerated=rng.random() < 1 / 3,
            destinations=(
                frozenset()
                if rng.random() < 0.25
                else frozenset(rng.sample(DESTINATIONS, rng.randint(1, 3)))
            ),
            arrived_s=rng.randint(0, DAY_S),
        )
        for i in range(trucks)
    ]
    return waiting, standing


def row(name: str, plan: Plan, seconds: float, shipments: list[Shipment]) -> dict[str, Any]:
    return {
        "row": name,
        "mean_fill_ratio": round(plan.mean_fill_ratio, 4),
        "trucks_used": len(plan.used_trucks),
        "loaded_kg": plan.loaded_g // 1000,
        "unassigned": len(plan.unassigned),
        "unassigned_wait_h": round(plan.unassigned_wait_s / 3600, 1),
        "score": list(score(plan, shipments)),
        "solve_s": round(seconds, 3),
    }


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True))]
    lines += [
        "  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=300, help="shipments waiting")
    parser.add_argument("--trucks", type=int, default=40, help="trucks waiting")
    parser.add_argument("--seed", type=int, default=7, help="seed of the yard")
    parser.add_argument("--time-limit", type=float, default=10.0, help="optimiser bound, seconds")
    parser.add_argument("--workers", type=int, default=8, help="workers of the last row")
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    args = parser.parse_args()

    shipments, trucks = yard(args.seed, args.shipments, args.trucks)
    began = time.perf_counter()
    greedy = first_fit_decreasing(shipments, trucks)
    greedy_s = time.perf_counter() - began
    began = time.perf_counter()
    best = optimise(shipments, trucks, time_limit_s=args.time_limit)
    best_s = time.perf_counter() - began
    greedy.check(shipments, trucks)
    best.check(shipments, trucks)
    rows = [row("ffd", greedy, greedy_s, shipments), row("cp-sat", best, best_s, shipments)]
    if args.workers > 1:
        began = time.perf_counter()
        wide = optimise(shipments, trucks, time_limit_s=args.time_limit, workers=args.workers)
        wide_s = time.perf_counter() - began
        wide.check(shipments, trucks)
        rows.append(row(f"cp-sat-x{args.workers}", wide, wide_s, shipments))

    offered_kg = sum(s.weight_g for s in shipments) // 1000
    room_kg = sum(t.capacity_g for t in trucks) // 1000
    print(
        f"{args.shipments} shipments ({offered_kg} kg), {args.trucks} trucks ({room_kg} kg), "
        f"seed {args.seed}, time limit {args.time_limit} s"
    )
    print(table(rows))
    if args.json is not None:
        document = {
            "bench": "loads",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "shipments": args.shipments,
            "trucks": args.trucks,
            "seed": args.seed,
            "time_limit_s": args.time_limit,
            "workers": args.workers,
            "offered_kg": offered_kg,
            "capacity_kg": room_kg,
            "rows": rows,
        }
        common.write_json(args.json, document)


if __name__ == "__main__":
    main()
