"""Dispatch's Prometheus metrics: the yard as it is at each scrape, and what happened since start.

Gauges are read from the yard when Prometheus scrapes, so they are never out of step with it.
Histograms and counters are observed as the yard's log is folded, but only once the yard has
caught up: a restart rebuilds the day from the log, and counting the day again would make every
rate jump. Times are the events' own (a departure's time minus the check-in's), not the clock of
the moment the fold ran.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dispatch.domain.errors import DispatchError
from dispatch.domain.yard import TruckStatus, Yard
from dispatch.service import DispatchService
from melon_contracts.envelope import Message
from melon_contracts.events import TruckStatusChanged

MINUTE = 60.0
HOUR = 3600.0


class DispatchMetrics:
    """Every dispatch metric, in one registry the API serves at ``/metrics``."""

    def __init__(self, service: DispatchService, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._service = service
        self.decisions = Counter(
            "melon_dispatch_decisions_total",
            "Yard decisions folded since start, by kind and whether they stood",
            ["kind", "outcome"],
            registry=registry,
        )
        self.refusals = Counter(
            "melon_dispatch_refusals_total",
            "Requests refused, by error code",
            ["reason"],
            registry=registry,
        )
        self.dwell = Histogram(
            "melon_dispatch_truck_dwell_seconds",
            "Time from gate check-in to departure, per truck",
            buckets=(
                15 * MINUTE,
                30 * MINUTE,
                HOUR,
                1.5 * HOUR,
                2 * HOUR,
                3 * HOUR,
                4 * HOUR,
                6 * HOUR,
                8 * HOUR,
                12 * HOUR,
                24 * HOUR,
            ),
            registry=registry,
        )
        self.fill = Histogram(
            "melon_dispatch_departure_fill_ratio",
            "Share of a truck's capacity used when it departs",
            buckets=(0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0),
            registry=registry,
        )
        self.trade_to_departure = Histogram(
            "melon_dispatch_trade_to_departure_seconds",
            "Time from a trade to the departure of the truck carrying its goods, per trade",
            buckets=(
                30 * MINUTE,
                HOUR,
                2 * HOUR,
                4 * HOUR,
                8 * HOUR,
                12 * HOUR,
                24 * HOUR,
                48 * HOUR,
            ),
            registry=registry,
        )
        self.solve = Histogram(
            "melon_dispatch_suggestion_solve_seconds",
            "Time the planner took to suggest loads for the yard",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=registry,
        )
        registry.register(_YardCollector(service))
        service.on_fold.append(self._folded)
        service.on_suggestion.append(lambda s: self.solve.observe(s.solve_s))

    def refused(self, code: str) -> None:
        self.refusals.labels(code).inc()

    def _folded(self, event: Message, outcome: DispatchError | None, yard: Yard) -> None:
        if not self._service.live:
            return
        self.decisions.labels(type(event).__name__, "stood" if outcome is None else "refused").inc()
        if outcome is not None:
            return
        if isinstance(event, TruckStatusChanged) and event.status == "departed":
            visit = yard.visit_by_id(str(event.visit_id))
            departed = event.occurred_at
            self.dwell.observe(visit.dwell_s(departed))
            self.fill.observe(visit.fill_ratio)
            for assignment in visit.assignments.values():
                for line in assignment.lines:
                    waited = (departed - line.traded_at).total_seconds()
                    self.trade_to_departure.observe(max(0.0, waited))


class _YardCollector(Collector):
    """The yard's gauges, read under its lock at scrape time."""

    def __init__(self, service: DispatchService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        now = self._service.now()

        def read(yard: Yard) -> list[Metric]:
            trucks = GaugeMetricFamily(
                "melon_dispatch_trucks", "Trucks in the yard by status", labels=["status"]
            )
            visits = yard.visits()
            for status in TruckStatus:
                if status is TruckStatus.DEPARTED:
                    continue
                count = sum(1 for v in visits if v.status is status)
                trucks.add_metric([status.value], count)
            waiting = yard.waiting()
            shipments = GaugeMetricFamily(
                "melon_dispatch_shipments_waiting", "Shipments waiting for a truck"
            )
            shipments.add_metric([], len(waiting))
            waiting_kg = GaugeMetricFamily(
                "melon_dispatch_waiting_kg", "Kilograms sold and waiting for a truck"
            )
            waiting_kg.add_metric([], sum(s.weight_g for s in waiting) / 1000)
            oldest = GaugeMetricFamily(
                "melon_dispatch_oldest_waiting_seconds",
                "How long the longest-waiting shipment has waited",
            )
            oldest.add_metric(
                [],
                max(((now - s.waiting_since).total_seconds() for s in waiting), default=0.0),
            )
            longest = GaugeMetricFamily(
                "melon_dispatch_longest_dwell_seconds",
                "How long the truck in the yard longest has been there",
            )
            longest.add_metric([], max((v.dwell_s(now) for v in visits), default=0.0))
            fill = GaugeMetricFamily(
                "melon_dispatch_open_fill_ratio",
                "Mean share of capacity assigned, over trucks in the yard with a load",
            )
            loaded = [v.fill_ratio for v in visits if v.assignments]
            fill.add_metric([], sum(loaded) / len(loaded) if loaded else 0.0)
            bays = GaugeMetricFamily("melon_dispatch_bays_occupied", "Loading bays in use")
            bays.add_metric([], len(yard.occupied_bays()))
            return [trucks, shipments, waiting_kg, oldest, longest, fill, bays]

        yield from self._service.read(read)
        suggestion = self._service.latest_suggestion()
        if suggestion is not None:
            planned = GaugeMetricFamily(
                "melon_dispatch_suggested_fill_ratio",
                "Mean fill ratio of the latest suggestion's trucks, by planner",
                labels=["planner"],
            )
            planned.add_metric(["optimiser"], suggestion.fill_after)
            planned.add_metric(["first_fit_decreasing"], suggestion.greedy_fill_after)
            yield planned
