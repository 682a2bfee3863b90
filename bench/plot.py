"""The benchmark suite on one page: var/bench/bench.svg, and bench.png rendered from it.

    python bench/plot.py [--dir var/bench] [--out var/bench/bench.png] [--svg-only]

Reads the JSON that ``make bench`` wrote (any may be missing; its panel then says so) and draws:

- throughputs side by side on a log scale: Kafka's own tools, the kafka-python client and the
  faust agent (the baselines), the scale gateway, the matching core, the board fan-out and the
  whole pipeline;
- latency percentiles (p50, p95, p99, max) on a log scale: the pipeline's effects at 50 % and
  100 % of its sustained rate, the board fan-out, and the broker's producer;
- the load planners: mean fill of the trucks used and kg loaded, against what was offered and
  what the trucks could take;
- the pipeline's rate search (offered, weighed and traded lots a second per step) and the
  matcher's restart times by book size.

The SVG is drawn here, with no plotting library; the PNG is a screenshot of it in the system's
Chromium through Playwright (``melon_devkit.browser``), as the page tests take theirs. The
ratios pipeline/client, client/broker and faust/client come from ``summary.py``, which this
also runs, so ``summary.json`` is written beside the chart.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import summary

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1400
MARGIN = 24
GAP = 24
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
INK = "#222"
MUTED = "#777"
GRID = "#e3e3e3"
COLOURS = {
    "broker": "#4e79a7",
    "client": "#59a14f",
    "faust": "#b07aa1",
    "gateway": "#f28e2b",
    "matching": "#76b7b2",
    "fanout": "#edc948",
    "pipeline": "#e15759",
}
PERCENTILES = (("p50", "#4e79a7"), ("p95", "#f28e2b"), ("p99", "#e15759"), ("max", "#333"))
SERIES = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2")


@dataclass
class Svg:
    """SVG elements in drawing order."""

    width: int
    height: int = 0
    parts: list[str] = field(default_factory=list)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(
        self,
        x: float,
        y: float,
        content: str,
        size: int = 12,
        anchor: str = "start",
        colour: str = INK,
        weight: str = "normal",
    ) -> None:
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{colour}" font-weight="{weight}">{escape(content)}</text>'
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        colour: str = GRID,
        width: float = 1,
        dash: str = "",
    ) -> None:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="{width}"{dashes}/>'
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str = "none") -> None:
        self.add(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}" stroke="{stroke}"/>'
        )

    def marker(self, kind: str, x: float, y: float, colour: str) -> None:
        if kind == "p50":
            self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>')
        elif kind == "p95":
            self.add(
                f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}" '
                f'transform="rotate(45 {x:.1f} {y:.1f})"/>'
            )
        elif kind == "p99":
            self.add(
                f'<path d="M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 4:.1f} L{x - 5:.1f},{y + 4:.1f} '
                f'Z" fill="{colour}"/>'
            )
        else:
            self.line(x, y - 6, x, y + 6, colour, 2.5)

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}" font-family="{FONT}">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n'
        )


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float


def panel(svg: Svg, box: Box, title: str, note: str = "", note_lines: int = 1) -> Box:
    """A framed panel with its title and a note of up to ``note_lines`` lines; returns the area
    left for the chart."""
    svg.rect(box.x, box.y, box.w, box.h, "#fafafa", "#d0d0d0")
    svg.text(box.x + 12, box.y + 22, title, 15, weight="bold")
    # About 6 px a character at 11 px: enough to keep a line inside the frame.
    lines = textwrap.wrap(note, int((box.w - 24) / 6.2))
    if len(lines) > note_lines:
        lines = [
            *lines[: note_lines - 1],
            textwrap.shorten(" ".join(lines[note_lines - 1 :]), int((box.w - 24) / 6.2)),
        ]
    for index, line in enumerate(lines):
        svg.text(box.x + 12, box.y + 40 + 14 * index, line, 11, colour=MUTED)
    top = 38 + 14 * len(lines)
    return Box(box.x + 12, box.y + top, box.w - 24, box.h - top - 10)


def empty(svg: Svg, area: Box, why: str) -> None:
    svg.text(area.x + area.w / 2, area.y + area.h / 2, why, 13, "middle", MUTED)


def short(value: float) -> str:
    """A figure in three significant digits with k / M, as an axis or a bar reads it."""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e4:
        return f"{value / 1e3:.3g}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


class LogAxis:
    """Positive values to x on a log scale whose ends are powers of ten around them."""

    def __init__(self, values: Sequence[float], left: float, right: float) -> None:
        positive = [v for v in values if v > 0] or [1.0]
        # A little room below the smallest value, so a bar of exactly 10^n still shows.
        self.low = math.floor(math.log10(min(positive) * 0.8))
        self.high = max(self.low + 1, math.ceil(math.log10(max(positive))))
        self.left, self.right = left, right

    def x(self, value: float) -> float:
        share = (math.log10(max(value, 10.0**self.low)) - self.low) / (self.high - self.low)
        return self.left + share * (self.right - self.left)

    def draw(self, svg: Svg, top: float, bottom: float, unit: str) -> None:
        for power in range(self.low, self.high + 1):
            x = self.x(10.0**power)
            svg.line(x, top, x, bottom, GRID)
            svg.text(x, bottom + 14, short(10.0**power), 11, "middle", MUTED)
            if power < self.high:
                for minor in (2, 5):
                    xm = self.x(minor * 10.0**power)
                    svg.line(xm, top, xm, bottom, "#f0f0f0")
        svg.text(self.right, bottom + 28, unit, 11, "end", MUTED)


def throughput_rows(found: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(label, per second, colour group) for every throughput the suite measured."""
    rows: list[tuple[str, float, str]] = []
    names = {
        ("broker", "produce"): "Kafka producer tool",
        ("broker", "consume"): "Kafka consumer tool",
        ("client", "produce"): "kafka-python produce",
        ("client", "consume"): "kafka-python consume",
        ("client", "loop"): "kafka-python loop",
        ("faust", "loop"): "faust agent loop",
    }
    for (baseline, stage), label in names.items():
        value = summary.dig(found, "baselines", "baselines", baseline, stage, "records_per_s")
        if value:
            rows.append((f"{label} (records/s)", float(value), baseline))
    for row in summary.dig(found, "gateway", "results") or []:
        if row.get("readings_per_s"):
            label = f"gateway {row['stage']} {row['protocol']} (readings/s)"
            rows.append((label, float(row["readings_per_s"]), "gateway"))
    for row in summary.dig(found, "matching", "results") or []:
        if row.get("op") == "all" and row.get("ops_per_s"):
            rows.append(
                (f"matching {row['row']} (commands/s)", float(row["ops_per_s"]), "matching")
            )
    fan = found.get("fanout")
    if fan is not None:
        deliveries = summary.fanout(fan)["deliveries_per_s"]
        if deliveries:
            rows.append(("board fan-out (lines delivered/s)", float(deliveries), "fanout"))
    records = summary.dig(found, "pipeline", "pipeline", "records_per_s")
    if records:
        rows.append(("pipeline, hall topics (records/s)", float(records), "pipeline"))
    lots = summary.dig(found, "pipeline", "sustained_lots_per_s")
    if lots:
        rows.append(("pipeline sustained (lots/s)", float(lots), "pipeline"))
    return rows


def draw_throughput(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(svg, box, "Throughput per second (log scale)", "one process each; bars labelled")
    rows = throughput_rows(found)
    if not rows:
        empty(svg, area, "no throughput figures (baselines, gateway, matching, pipeline missing)")
        return
    label_w = 270
    axis = LogAxis([value for _, value, _ in rows], area.x + label_w, area.x + area.w - 60)
    bottom = area.y + area.h - 34
    step = min(26.0, (bottom - area.y) / len(rows))
    axis.draw(svg, area.y, bottom, "per second")
    for index, (label, value, group) in enumerate(rows):
        y = area.y + index * step
        svg.text(area.x + label_w - 8, y + step * 0.65, label, 12, "end")
        end = axis.x(value)
        svg.rect(axis.left, y + step * 0.15, end - axis.left, step * 0.7, COLOURS[group])
        svg.text(end + 4, y + step * 0.65, short(value), 11)


def latency_rows(found: dict[str, Any]) -> list[tuple[str, dict[str, float], str]]:
    rows: list[tuple[str, dict[str, float], str]] = []
    for name, run in (summary.dig(found, "pipeline", "latency") or {}).items():
        for effect, figures in (run.get("effects_ms") or {}).items():
            if figures.get("n"):
                label = f"pipeline {name} ({run.get('rate', 0):g}/s): {effect.replace('_', ' ')}"
                rows.append((label, figures, "pipeline"))
    fan = summary.dig(found, "fanout", "figures", "latency_ms")
    if fan and fan.get("p50"):
        clients = summary.dig(found, "fanout", "figures", "clients") or 0
        rows.append((f"board fan-out, {clients:,} watchers", fan, "fanout"))
    broker = summary.dig(found, "baselines", "baselines", "broker", "produce", "latency_ms")
    if broker and broker.get("p50"):
        rows.append(("Kafka producer tool (acks=all)", broker, "broker"))
    return rows


def draw_latency(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(
        svg,
        box,
        "Latency percentiles, ms (log scale)",
        "pipeline: from the lot's LotWeighed to each effect",
    )
    rows = latency_rows(found)
    if not rows:
        empty(svg, area, "no latency figures (pipeline, fanout, baselines missing)")
        return
    label_w = 300
    values = [f[k] for _, f, _ in rows for k, _ in PERCENTILES if f.get(k)]
    axis = LogAxis(values, area.x + label_w + 30, area.x + area.w - 50)
    bottom = area.y + area.h - 56
    step = min(26.0, (bottom - area.y) / len(rows))
    axis.draw(svg, area.y, bottom, "ms")
    for index, (label, figures, group) in enumerate(rows):
        y = area.y + index * step + step / 2
        svg.rect(area.x, y - 5, 6, 10, COLOURS[group])
        svg.text(area.x + label_w - 8, y + 4, label, 12, "end")
        present = [figures[k] for k, _ in PERCENTILES if figures.get(k)]
        svg.line(axis.x(min(present)), y, axis.x(max(present)), y, "#999", 1.5)
        for key, colour in PERCENTILES:
            if figures.get(key):
                svg.marker(key, axis.x(figures[key]), y, colour)
        svg.text(axis.x(min(present)) - 8, y + 4, short(min(present)), 10, "end", MUTED)
        svg.text(axis.x(max(present)) + 8, y + 4, short(max(present)), 10, colour=MUTED)
    legend_y = area.y + area.h - 8
    for index, (key, colour) in enumerate(PERCENTILES):
        x = area.x + label_w + index * 80
        svg.marker(key, x, legend_y - 4, colour)
        svg.text(x + 10, legend_y, key, 11)


def grouped_bars(
    svg: Svg,
    area: Box,
    groups: list[tuple[str, list[tuple[str, float]]]],
    top_value: float,
    fmt: Callable[[float], str],
    references: Sequence[tuple[float, str]] = (),
) -> None:
    """Groups of vertical bars on a linear scale from 0 to about ``top_value``; ``references``
    are dashed horizontal lines, one per group in order: (value, colour)."""
    top_value = nice_ceiling(top_value)
    bottom = area.y + area.h - 30
    height = bottom - area.y - 14
    for tick in range(5):
        value = top_value * tick / 4
        y = bottom - height * tick / 4
        svg.line(area.x + 40, y, area.x + area.w, y, GRID)
        svg.text(area.x + 36, y + 4, fmt(value), 10, "end", MUTED)
    group_w = (area.w - 50) / max(1, len(groups))
    series = list(dict.fromkeys(name for _, bars in groups for name, _ in bars))
    colour = {name: SERIES[index % len(SERIES)] for index, name in enumerate(series)}
    for index, (label, bars) in enumerate(groups):
        left = area.x + 50 + index * group_w
        bar_w = min(46.0, (group_w - 20) / max(1, len(bars)))
        start = left + (group_w - len(bars) * bar_w) / 2
        for n, (name, value) in enumerate(bars):
            h = height * value / top_value if top_value else 0
            x = start + n * bar_w
            svg.rect(x + 2, bottom - h, bar_w - 4, h, colour[name])
            svg.text(x + bar_w / 2, bottom - h - 4, fmt(value), 10, "middle")
        svg.text(left + group_w / 2, bottom + 16, label, 11, "middle")
        if index < len(references):
            value, tint = references[index]
            y = bottom - height * value / top_value
            svg.line(start - 6, y, start + len(bars) * bar_w + 6, y, tint, 1.5, "5,3")
    for n, name in enumerate(series):
        x = area.x + 50 + n * 110
        svg.rect(x, area.y - 12, 10, 10, colour[name])
        svg.text(x + 14, area.y - 3, name, 11)


def nice_ceiling(value: float) -> float:
    """The smallest round number at or above ``value`` whose quarters are round too."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    steps = (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10)
    return next(f * power for f in steps if f * power >= value * 0.999)


def planner_groups(found: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    groups = []
    for name in ("loads", "loads-balanced"):
        document = found.get(name)
        if document and document.get("rows"):
            label = (
                f"{document.get('shipments', '?')} shipments, {document.get('trucks', '?')} trucks"
            )
            groups.append((label, document))
    return groups


def draw_planner_fill(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(svg, box, "Load planners: mean fill of the trucks used", "loads, loads-balanced")
    groups = planner_groups(found)
    if not groups:
        empty(svg, area, "no planner figures (loads, loads-balanced missing)")
        return
    bars = [
        (label, [(row["row"], 100 * row["mean_fill_ratio"]) for row in document["rows"]])
        for label, document in groups
    ]
    grouped_bars(svg, Box(area.x, area.y + 16, area.w, area.h - 16), bars, 100.0, pct)


def pct(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def draw_planner_kg(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(
        svg,
        box,
        "Load planners: kg loaded",
        "dashed: what the trucks could take, or the freight offered if less",
    )
    groups = planner_groups(found)
    if not groups:
        empty(svg, area, "no planner figures (loads, loads-balanced missing)")
        return
    limits = [
        min(float(d.get("capacity_kg") or 0), float(d.get("offered_kg") or 0)) for _, d in groups
    ]
    bars = [
        (
            f"{label} · {bound(d)} {short(limit)} kg",
            [(row["row"], float(row["loaded_kg"])) for row in d["rows"]],
        )
        for (label, d), limit in zip(groups, limits, strict=True)
    ]
    top = max([v for _, b in bars for _, v in b] + limits) * 1.05
    references = [(limit, MUTED) for limit in limits]
    grouped_bars(svg, Box(area.x, area.y + 16, area.w, area.h - 16), bars, top, short, references)


def bound(document: dict[str, Any]) -> str:
    """Which limits the kg loaded: the trucks' room or the freight there is."""
    return "room" if document.get("capacity_kg", 0) <= document.get("offered_kg", 0) else "freight"


def draw_rate_search(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(
        svg,
        box,
        "Pipeline rate search: lots a second per step",
        str(summary.dig(found, "pipeline", "limit") or ""),
        note_lines=3,
    )
    steps = summary.dig(found, "pipeline", "steps") or []
    if not steps:
        empty(svg, area, "no pipeline figures (pipeline missing)")
        return
    bars = [
        (
            f"{step['rate']:g}/s " + ("held" if step.get("held") else "not held"),
            [
                ("offered", float(step["rate"])),
                ("weighed", float(step.get("weigh_rate") or 0)),
                ("traded", float(step.get("trade_rate") or 0)),
            ],
        )
        for step in sorted(steps, key=lambda step: float(step["rate"]))
    ]
    top = max(v for _, b in bars for _, v in b) * 1.05 or 1.0
    grouped_bars(svg, Box(area.x, area.y + 16, area.w, area.h - 16), bars, top, rate)


def rate(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def draw_recovery(svg: Svg, box: Box, found: dict[str, Any]) -> None:
    area = panel(svg, box, "Matcher restart after a crash, s", "by bids resting on its one book")
    results = [
        row
        for row in summary.dig(found, "recovery", "results") or []
        if not row.get("failed") and row.get("applied_s") is not None
    ]
    if not results:
        empty(svg, area, "no recovery figures (recovery missing)")
        return
    keys = ("group_wait_s", "replay_s", "recovered_s", "applied_s")
    bars = [
        (f"{row['size']:,} bids", [(key[:-2], float(row.get(key) or 0)) for key in keys])
        for row in results
    ]
    top = max(v for _, b in bars for _, v in b) * 1.05 or 1.0
    grouped_bars(svg, Box(area.x, area.y + 16, area.w, area.h - 16), bars, top, rate)


def header(svg: Svg, facts: dict[str, Any]) -> None:
    machine = facts["machine"]
    svg.text(MARGIN, 34, "Melon Hall benchmarks", 22, weight="bold")
    described = (
        f"Python {machine.get('python')} · {machine.get('cpus')} CPUs · "
        f"Kafka {machine.get('kafka', '?')} · {machine.get('platform', '')}"
    )
    svg.text(MARGIN, 56, described, 12, colour=MUTED)
    svg.text(WIDTH - MARGIN, 34, f"written {facts['written_at']}", 12, "end", MUTED)
    missing = ", ".join(sorted(facts["missing"]))
    if missing:
        svg.text(WIDTH - MARGIN, 56, f"not in this run: {missing}", 12, "end", MUTED)


def footer(svg: Svg, y: float, facts: dict[str, Any]) -> None:
    svg.text(MARGIN, y, "Ratios", 14, weight="bold")
    for index, line in enumerate(summary.ratio_lines(facts)):
        svg.text(MARGIN + 70 + (index % 3) * 440, y, line.replace(" (", "  ("), 11)


def draw(found: dict[str, Any], facts: dict[str, Any]) -> Svg:
    svg = Svg(WIDTH)
    header(svg, facts)
    half = (WIDTH - 2 * MARGIN - GAP) / 2
    left, right = MARGIN, MARGIN + half + GAP
    top = 76.0
    draw_throughput(svg, Box(left, top, half, 540), found)
    draw_latency(svg, Box(right, top, half, 540), found)
    top += 540 + GAP
    draw_planner_fill(svg, Box(left, top, half, 300), found)
    draw_planner_kg(svg, Box(right, top, half, 300), found)
    top += 300 + GAP
    draw_rate_search(svg, Box(left, top, half, 300), found)
    draw_recovery(svg, Box(right, top, half, 300), found)
    top += 300 + GAP + 8
    footer(svg, top, facts)
    svg.height = int(top + 24)
    return svg


def screenshot(svg_text: str, width: int, height: int, out: Path) -> None:
    """The SVG as a PNG, drawn by the system's Chromium."""
    from playwright.sync_api import sync_playwright

    from melon_devkit.browser import launch_chromium

    page_html = f'<!doctype html><html><body style="margin:0">{svg_text}</body></html>'
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_content(page_html)
            page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": width, "height": height})
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench", help="the JSON files")
    parser.add_argument("--out", type=Path, help="the PNG to write; default DIR/bench.png")
    parser.add_argument("--svg-only", action="store_true", help="write the SVG, not the PNG")
    args = parser.parse_args(argv)
    out = args.out or args.dir / "bench.png"
    found, problems = summary.load(args.dir)
    facts = summary.summarize(found, problems)
    summary.write(facts, args.dir / "summary.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for line in summary.ratio_lines(facts):
        print(line)
    svg = draw(found, facts)
    text = svg.render()
    svg_path = out.with_suffix(".svg")
    svg_path.write_text(text, encoding="utf-8")
    print(f"written to {svg_path} and {args.dir / 'summary.json'}")
    if not args.svg_only:
        screenshot(text, svg.width, svg.height, out)
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
