"""The benchmark suite's headline figures in one place, and the ratios that matter.

    python bench/summary.py [--dir var/bench] [--json var/bench/summary.json]

Reads what ``make bench`` wrote (``gateway``, ``matching``, ``recovery``, ``loads``,
``loads-balanced``, ``baselines``, ``fanout`` and ``pipeline`` JSON; any may be missing or from an
older layout, and is then left out) and prints three ratios:

- pipeline / client: records a second the whole hall puts on its topics at its sustained lot
  rate, over kafka-python's consume-transform-produce loop (what one plain client process moves);
- client / broker: that loop over Kafka's own producer tool (what the broker takes);
- faust / client: the same transform in a faust-streaming agent over the kafka-python loop.

``summary.json`` holds every headline figure, the ratios, which files were read and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHES = (
    "gateway",
    "matching",
    "recovery",
    "loads",
    "loads-balanced",
    "baselines",
    "fanout",
    "pipeline",
)
Document = dict[str, Any]


def load(folder: Path) -> tuple[dict[str, Document], dict[str, str]]:
    """Each bench's JSON by name, and why any could not be read."""
    found: dict[str, Document] = {}
    problems: dict[str, str] = {}
    for name in BENCHES:
        path = folder / f"{name}.json"
        if not path.exists():
            problems[name] = "missing"
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems[name] = f"unreadable: {exc}"
            continue
        if isinstance(document, dict):
            found[name] = document
        else:
            problems[name] = "not a JSON object"
    return found, problems


def dig(document: Any, *path: str | int) -> Any:
    """A nested value, or None where any step is missing."""
    for step in path:
        try:
            document = document[step]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def _ratio(over: Any, under: Any) -> float | None:
    if not isinstance(over, int | float) or not isinstance(under, int | float) or not under:
        return None
    return round(over / under, 5)


def gateway(document: Document) -> dict[str, float]:
    return {
        f"{row['stage']}.{row['protocol']}": row["readings_per_s"]
        for row in document.get("results", [])
        if {"stage", "protocol", "readings_per_s"} <= set(row)
    }


def matching(document: Document) -> dict[str, dict[str, float]]:
    return {
        row["row"]: {key: row[key] for key in ("ops_per_s", "p50_us", "p99_us")}
        for row in document.get("results", [])
        if row.get("op") == "all"
    }


def recovery(document: Document) -> list[dict[str, Any]]:
    keys = ("size", "book_bytes", "replay_s", "group_wait_s", "recovered_s", "applied_s")
    return [
        {key: row.get(key) for key in keys}
        for row in document.get("results", [])
        if not row.get("failed")
    ]


def loads(document: Document) -> dict[str, Any]:
    return {
        "shipments": document.get("shipments"),
        "trucks": document.get("trucks"),
        "offered_kg": document.get("offered_kg"),
        "capacity_kg": document.get("capacity_kg"),
        "rows": {
            row["row"]: {
                "mean_fill_ratio": row["mean_fill_ratio"],
                "loaded_kg": row["loaded_kg"],
                "unassigned": row["unassigned"],
                "solve_s": row["solve_s"],
            }
            for row in document.get("rows", [])
        },
    }


def baselines(document: Document) -> dict[str, Any]:
    rates = {
        f"{baseline}.{stage}": figures.get("records_per_s")
        for baseline, stages in document.get("baselines", {}).items()
        for stage, figures in stages.items()
    }
    return {
        "records_per_s": rates,
        "record_bytes": dig(document, "settings", "record_bytes"),
        "broker_produce_latency_ms": dig(document, "baselines", "broker", "produce", "latency_ms"),
    }


def fanout(document: Document) -> dict[str, Any]:
    figures = document.get("figures", {})
    delivered, publish_s = figures.get("delivered"), figures.get("publish_s")
    return {
        "clients": figures.get("clients"),
        "delivered": delivered,
        "expected": figures.get("expected"),
        "latency_ms": figures.get("latency_ms"),
        "deliveries_per_s": _ratio(delivered, publish_s),
        "server_rss_kb_per_client": figures.get("server_rss_kb_per_client"),
    }


def pipeline(document: Document) -> dict[str, Any]:
    return {
        "sustained_lots_per_s": document.get("sustained_lots_per_s"),
        "records_per_s": dig(document, "pipeline", "records_per_s"),
        "records_per_lot": dig(document, "pipeline", "records_per_lot"),
        "limit": document.get("limit"),
        "latency_ms": {
            name: {
                "rate": run.get("rate"),
                **{
                    effect: {k: v for k, v in figures.items() if k != "n"}
                    for effect, figures in run.get("effects_ms", {}).items()
                },
            }
            for name, run in document.get("latency", {}).items()
        },
        "stations": dig(document, "settings", "stations"),
    }


HEADLINES = {
    "gateway": gateway,
    "matching": matching,
    "recovery": recovery,
    "loads": loads,
    "loads-balanced": loads,
    "baselines": baselines,
    "fanout": fanout,
    "pipeline": pipeline,
}


def ratios(found: dict[str, Document]) -> dict[str, float | None]:
    client = dig(found, "baselines", "baselines", "client", "loop", "records_per_s")
    broker = dig(found, "baselines", "baselines", "broker", "produce", "records_per_s")
    faust = dig(found, "baselines", "baselines", "faust", "loop", "records_per_s")
    hall = dig(found, "pipeline", "pipeline", "records_per_s")
    return {
        "pipeline_over_client": _ratio(hall, client),
        "client_over_broker": _ratio(client, broker),
        "faust_over_client": _ratio(faust, client),
    }


def machine(found: dict[str, Document]) -> dict[str, Any]:
    """This machine now, with what the benches said of theirs (the broker's version, load)."""
    seen: dict[str, Any] = {}
    for name in ("gateway", "matching", "recovery", "fanout", "baselines", "pipeline"):
        described = dig(found, name, "machine")
        if isinstance(described, dict):
            seen.update(described)
    return {
        **seen,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_now": [round(load, 2) for load in os.getloadavg()],
    }


def collect(folder: Path) -> Document:
    return summarize(*load(folder))


def summarize(found: dict[str, Document], problems: dict[str, str]) -> Document:
    problems = dict(problems)
    headlines: Document = {}
    for name, document in found.items():
        try:
            headlines[name] = HEADLINES[name](document)
        except (KeyError, TypeError, AttributeError) as exc:
            problems[name] = f"layout not understood: {exc!r}"
    return {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "read": sorted(headlines),
        "missing": problems,
        "ratios": ratios(found),
        "headlines": headlines,
        "machine": machine(found),
    }


def ratio_lines(summary: Document) -> list[str]:
    names = {
        "pipeline_over_client": "pipeline / client (hall records/s over the kafka-python loop)",
        "client_over_broker": "client / broker (kafka-python loop over Kafka's producer tool)",
        "faust_over_client": "faust / client (faust-streaming agent over the kafka-python loop)",
    }
    return [
        f"{label}: " + ("n/a" if summary["ratios"][key] is None else f"{summary['ratios'][key]:g}")
        for key, label in names.items()
    ]


def write(summary: Document, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench", help="the JSON files")
    parser.add_argument("--json", type=Path, help="where to write; default DIR/summary.json")
    args = parser.parse_args(argv)
    summary = collect(args.dir)
    print(f"Melon Hall benchmarks: read {', '.join(summary['read']) or 'nothing'}")
    for name, why in summary["missing"].items():
        print(f"  {name}: {why}")
    for line in ratio_lines(summary):
        print(line)
    out = args.json or args.dir / "summary.json"
    write(summary, out)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
