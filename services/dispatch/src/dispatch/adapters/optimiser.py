"""Suggested loads from OR-Tools CP-SAT: the exact counterpart of first-fit-decreasing.

The model has one boolean per (shipment, truck) pair the rules allow (cold chain, destination, a
shipment no heavier than the truck), one capacity constraint per truck and "at most one truck" per
shipment. The objective of ``dispatch.domain.loads`` is lexicographic, so it is solved in two
passes rather than with one weighted sum, which would need coefficients near 10^16 on a day's
yard: first the loaded weight is maximised; then, with the weight held at least at that figure,
the wait of the loaded shipments is.

Both passes start from a hint (the FFD plan, then the first pass's answer) and the result is
compared with FFD by ``score`` before it is returned, so it is never worse than FFD. By default
the solver runs on one worker with a fixed seed (more workers are interleaved in fixed batches,
equally repeatable), so a run that finishes within its time limit gives the same plan every
time; a run cut short by the limit returns the best plan found so far, which can differ between
machines. With no solution in time, the FFD plan is returned.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ortools.sat.python import cp_model

from dispatch.domain.loads import (
    Plan,
    Shipment,
    Truck,
    allowed,
    first_fit_decreasing,
    reference_time,
    score,
    wait_s,
    yard_order,
)

SEED = 20250720
FIRST_PASS_SHARE = 0.7
"""At most this share of the time limit goes to the weight; the rest, and any left over, to wait."""


def optimise(
    shipments: Sequence[Shipment],
    trucks: Sequence[Truck],
    time_limit_s: float = 2.0,
    now_s: int | None = None,
    workers: int = 1,
) -> Plan:
    """The best plan CP-SAT finds within ``time_limit_s`` seconds in all; never worse than FFD.

    ``workers`` above 1 interleaves that many CP-SAT strategies (neighbourhood search among them)
    in fixed batches, which stays deterministic and finds better day-sized plans than one worker.
    """
    started = time.monotonic()
    now = reference_time(shipments, trucks) if now_s is None else now_s
    greedy = first_fit_decreasing(shipments, trucks, now)
    weight = _Model(shipments, trucks, now)
    if not weight.x:
        return greedy
    weight.hint(greedy.assignments)
    weight.model.maximize(weight.loaded_g)
    first = weight.solve(time_limit_s * FIRST_PASS_SHARE, workers)
    if first is None:
        return greedy
    best = Plan.of(shipments, trucks, first, now)

    remaining_s = time_limit_s - (time.monotonic() - started)
    if remaining_s > 0:
        wait = _Model(shipments, trucks, now)
        wait.model.add(wait.loaded_g >= best.loaded_g)
        wait.hint(first)
        wait.model.maximize(wait.loaded_wait_s)
        second = wait.solve(remaining_s, workers)
        if second is not None:
            candidate = Plan.of(shipments, trucks, second, now)
            if score(candidate, shipments) > score(best, shipments):
                best = candidate
    return best if score(best, shipments) >= score(greedy, shipments) else greedy


class _Model:
    """The loading rules as a CP-SAT model, with the two objective terms ready to use."""

    def __init__(self, shipments: Sequence[Shipment], trucks: Sequence[Truck], now_s: int) -> None:
        order = yard_order(trucks)
        self.model = cp_model.CpModel()
        self.x: dict[tuple[str, str], cp_model.IntVar] = {}
        for shipment in shipments:
            for truck in order:
                if allowed(shipment, truck):
                    self.x[shipment.shipment_id, truck.plate] = self.model.new_bool_var(
                        f"x[{shipment.shipment_id},{truck.plate}]"
                    )
        for shipment in shipments:
            pairs = [
                self.x[shipment.shipment_id, t.plate]
                for t in order
                if (shipment.shipment_id, t.plate) in self.x
            ]
            if len(pairs) > 1:
                self.model.add_at_most_one(pairs)
        by_id = {s.shipment_id: s for s in shipments}
        on_truck: dict[str, list[tuple[Shipment, cp_model.IntVar]]] = {t.plate: [] for t in order}
        for (shipment_id, plate), var in self.x.items():
            on_truck[plate].append((by_id[shipment_id], var))
        for truck in order:
            pairs_on = on_truck[truck.plate]
            if sum(s.weight_g for s, _ in pairs_on) > truck.capacity_g:
                self.model.add(
                    cp_model.LinearExpr.weighted_sum(
                        [var for _, var in pairs_on], [s.weight_g for s, _ in pairs_on]
                    )
                    <= truck.capacity_g
                )
        variables = list(self.x.values())
        loaded = [by_id[shipment_id] for shipment_id, _ in self.x]
        self.loaded_g = cp_model.LinearExpr.weighted_sum(variables, [s.weight_g for s in loaded])
        self.loaded_wait_s = cp_model.LinearExpr.weighted_sum(
            variables, [wait_s(s, now_s) for s in loaded]
        )

    def hint(self, assignments: Mapping[str, str]) -> None:
        for (shipment_id, plate), var in self.x.items():
            self.model.add_hint(var, assignments.get(shipment_id) == plate)

    def solve(self, time_limit_s: float, workers: int = 1) -> dict[str, str] | None:
        """Assignments of the best solution found, or None when there is none."""
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = max(workers, 1)
        solver.parameters.interleave_search = workers > 1
        solver.parameters.random_seed = SEED
        solver.parameters.max_time_in_seconds = max(time_limit_s, 0.01)
        status = solver.solve(self.model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        return {
            shipment_id: plate for (shipment_id, plate), var in self.x.items() if solver.value(var)
        }
