"""Benchmarks are not tests: CI only runs them at a tiny size, to catch breakage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADS = [sys.executable, str(ROOT / "bench" / "bench_loads.py")]


def test_the_gateway_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_gateway.py"),
            "--seconds=0.5",
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text(encoding="utf-8"))
    text = json.dumps(results)
    assert "decoder" in text and "memory" in text and "mt-sics" in text and "xk3190" in text


def test_the_matching_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "matching.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_matching.py"), "--seconds=1", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text(encoding="utf-8")
    assert "p99" in text and "place" in text


def test_the_load_planner_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "loads.json"
    run = subprocess.run(
        [*LOADS, "--shipments=30", "--trucks=5", "--time-limit=1", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text(encoding="utf-8")
    assert "ffd" in text and "cp-sat" in text


@pytest.mark.e2e
def test_the_baseline_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "baselines.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_baselines.py"),
            "--records=1000",
            "--seconds=10",
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    stages = {
        (baseline, stage): figures
        for baseline, by_stage in document["baselines"].items()
        for stage, figures in by_stage.items()
    }
    assert set(stages) == {
        ("broker", "produce"),
        ("broker", "consume"),
        ("client", "produce"),
        ("client", "consume"),
        ("client", "loop"),
        ("faust", "loop"),
    }
    assert all(figures["records_per_s"] > 0 for figures in stages.values()), stages
    assert stages["client", "produce"]["records"] == 1000
    latency = stages["broker", "produce"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert stages["faust", "loop"]["repeats"] == 0
    ratios = document["ratios"]
    assert ratios["client_loop_over_broker_produce"] > 0
    assert ratios["faust_loop_over_client_loop"] > 0
    sizes = document["record_sizes"]
    assert set(sizes) == {"LotGraded", "PlaceBid", "TradeExecuted", "BoardUpdated", "median"}
    assert document["machine"]["kafka"] and document["machine"]["cpus"]


@pytest.mark.e2e
def test_the_board_fanout_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_fanout.py"),
            "--clients=20",
            "--updates=20",
            "--client-processes=2",
            f"--json={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures["connected"] == 20 and figures["expected"] == 20 * 20
    assert figures["clients_complete"] == 20 and figures["clients_ended"] == 0, figures
    assert figures["delivered"] + figures["skipped_conflated"] == figures["expected"], figures
    assert figures["missing_late"] == 0 and figures["duplicates"] == 0, figures
    assert figures["server_counters"]["delivered"] == figures["delivered"], figures
    assert figures["api_delivered_matches"] is True
    rates = figures["received_per_watcher_per_s"]
    assert 0 < rates["min"] <= rates["mean"] <= rates["sent"], rates
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    rss = figures["server_rss_kb"]
    assert set(rss) == {"idle", "connected", "end", "after_close"}
    assert min(rss.values()) > 0


@pytest.mark.e2e
def test_the_pipeline_benchmark_drives_lots_to_trucks_and_writes_its_figures(
    tmp_path: Path,
) -> None:
    out, baselines = tmp_path / "pipeline.json", tmp_path / "baselines.json"
    baselines.write_text(
        json.dumps({"baselines": {"client": {"loop": {"records_per_s": 1000.0}}}}),
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_pipeline.py"),
            "--seconds=3",
            "--max-rate=1",
            "--refine=0",
            "--stations=4",
            f"--baselines={baselines}",
            f"--json={out}",
            f"--profile={tmp_path / 'profile'}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    steps = document["steps"]
    assert [step["rate"] for step in steps][:1] == [0.5]
    first = steps[0]
    assert first["held"], first["reasons"]
    assert first["weighed"] == first["traded"] == first["on_board"] == first["suggested"] >= 1
    assert {"lots.weighed", "lots.graded", "book.commands", "trades"} <= set(
        first["records_by_topic"]
    )
    sustained = document["sustained_lots_per_s"]
    assert sustained in {step["rate"] for step in steps if step["held"]}
    assert set(document["latency"]) == {"50%", "100%"}
    for run_at in document["latency"].values():
        effects = run_at["effects_ms"]
        assert set(effects) == {"trade", "trade_received", "board", "truck_suggestion"}
        for figures in effects.values():
            assert figures["n"] == run_at["traded"] >= 1
            assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"]
        # Each lot's trade happens before anyone can hear of it.
        for later in ("trade_received", "board", "truck_suggestion"):
            assert effects["trade"]["p50"] <= effects[later]["p50"]
            assert effects["trade"]["max"] <= effects[later]["max"]
    pipeline = document["pipeline"]
    assert pipeline["lots_per_s"] == sustained and pipeline["records_per_lot"] > 0
    assert document["ratios"]["pipeline_over_client_loop"] == round(
        pipeline["records_per_s"] / 1000.0, 5
    )
    assert document["limit"] and document["machine"]["kafka"] and document["machine"]["cpus"]
    phases = first["round_phases_s"]
    assert all(phases[name] > 0 for name in ("to_stable", "ticket", "to_empty"))
    assert phases["ticket"] <= phases["ticket_p95"]
    # Every service was sampled, or the run says why not (py-spy needs ptrace).
    profile = document["profile"]
    assert {"ingest", "gateway", "pricing-worker", "pricing-api", "dispatch"} <= set(profile)
    sampled = {name: found for name, found in profile.items() if "error" not in found}
    for name, found in profile.items():
        if name not in sampled:
            assert "py-spy" in found["error"], found
    for found in sampled.values():  # an idle process may hold the GIL in none of the samples
        shares = [row["share"] for row in found["own"]]
        assert found["samples"] == 0 or 0 < sum(shares) <= 1.01  # shares are rounded
    if sampled:
        assert max(found["samples"] for found in sampled.values()) > 0


def test_the_profile_summary_shares_samples_by_function_and_lists_the_halls_own(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import sampling
    finally:
        sys.path.remove(str(ROOT / "bench"))
    raw = tmp_path / "ingest.txt"
    raw.write_text(
        "\n".join(
            [
                "main;run (uvicorn/server.py:86);observe (ingest/service.py:150) 30",
                "main;run (uvicorn/server.py:86);observe (ingest/service.py:157) 10",
                "kafka;poll (kafka/net/selector.py:567) 40",
                "main;weigh (ingest/service.py:202);dumps (json/__init__.py:238) 20",
                "not a sample line",
            ]
        ),
        encoding="utf-8",
    )
    summary = sampling.summarise(raw, seconds=2, rate_hz=100)
    assert (summary["samples"], summary["gil_held"]) == (100, 0.5)
    # Lines of one function fold together; the hottest frame by itself comes first
    assert summary["self"][:2] == [
        {"function": "observe (ingest/service.py)", "share": 0.4},
        {"function": "poll (kafka/net/selector.py)", "share": 0.4},
    ]
    # A library's work is charged to the hall's function that called it, else to the library
    assert summary["own"] == [
        {"function": "observe (ingest/service.py)", "share": 0.4},
        {"function": "[kafka]", "share": 0.4},
        {"function": "weigh (ingest/service.py)", "share": 0.2},
    ]
    text = sampling.report({"ingest": summary, "dispatch": {"error": "py-spy exit 1"}}, {})
    assert "observe (ingest/service.py) 40%" in text and "no profile: py-spy exit 1" in text


def bench_figures() -> dict[str, dict[str, object]]:
    """Small documents in the layout each bench writes, with round figures to check against."""
    machine = {"python": "3.11.7", "platform": "Linux", "cpus": 2}
    latency = {"n": 4, "p50": 50.0, "p95": 80.0, "p99": 90.0, "max": 95.0}
    planner = {
        "shipments": 30,
        "trucks": 5,
        "offered_kg": 1000,
        "capacity_kg": 800,
        "rows": [
            {
                "row": "ffd",
                "mean_fill_ratio": 0.8,
                "loaded_kg": 640,
                "unassigned": 3,
                "solve_s": 0.0,
            },
            {
                "row": "cp-sat",
                "mean_fill_ratio": 0.9,
                "loaded_kg": 720,
                "unassigned": 2,
                "solve_s": 1.0,
            },
        ],
    }
    return {
        "gateway": {
            "machine": machine,
            "results": [{"stage": "memory", "protocol": "mt-sics", "readings_per_s": 30000}],
        },
        "matching": {
            "machine": machine,
            "results": [
                {"row": "memory", "op": "all", "ops_per_s": 15000, "p50_us": 50, "p99_us": 200}
            ],
        },
        "recovery": {
            "machine": machine,
            "results": [
                {
                    "size": 100,
                    "replay_s": 0.2,
                    "group_wait_s": 5.0,
                    "recovered_s": 10.0,
                    "applied_s": 10.1,
                    "failed": None,
                },
            ],
        },
        "loads": planner,
        "loads-balanced": {**planner, "trucks": 9},
        "baselines": {
            "machine": {**machine, "kafka": "4.3.1"},
            "baselines": {
                "broker": {
                    "produce": {"records_per_s": 8000.0, "latency_ms": latency},
                    "consume": {"records_per_s": 16000.0},
                },
                "client": {
                    "produce": {"records_per_s": 3000.0},
                    "consume": {"records_per_s": 50000.0},
                    "loop": {"records_per_s": 4000.0},
                },
                "faust": {"loop": {"records_per_s": 1000.0}},
            },
        },
        "fanout": {
            "machine": machine,
            "figures": {
                "clients": 20,
                "delivered": 400,
                "expected": 400,
                "publish_s": 2.0,
                "latency_ms": latency,
            },
        },
        "pipeline": {
            "machine": machine,
            "sustained_lots_per_s": 2.0,
            "pipeline": {"records_per_s": 24.0, "records_per_lot": 12.0},
            "limit": "the weigh stations",
            "steps": [
                {"rate": 2.0, "held": True, "weigh_rate": 2.0, "trade_rate": 2.0},
                {"rate": 4.0, "held": False, "weigh_rate": 3.5, "trade_rate": 3.5},
            ],
            "latency": {
                "100%": {"rate": 2.0, "effects_ms": {"trade": latency, "board": latency}},
            },
        },
    }


@pytest.mark.browser
def test_the_plot_draws_every_bench_and_the_suites_ratios(tmp_path: Path) -> None:
    for name, document in bench_figures().items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plot.py"), f"--dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    png = (tmp_path / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    svg = (tmp_path / "bench.svg").read_text(encoding="utf-8")
    assert f'width="{width}" height="{height}"' in svg
    for label in (
        "kafka-python loop (records/s)",
        "gateway memory mt-sics",
        "pipeline sustained (lots/s)",
        "pipeline 100% (2/s): trade",
        "board fan-out, 20 watchers",
        "30 shipments, 9 trucks",
        "4/s not held",
        "100 bids",
    ):
        assert label in svg, label
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["ratios"] == {
        "pipeline_over_client": 0.006,
        "client_over_broker": 0.5,
        "faust_over_client": 0.25,
    }
    assert summary["missing"] == {}
    assert summary["headlines"]["pipeline"]["sustained_lots_per_s"] == 2.0
    assert "pipeline / client" in run.stdout and "0.006" in run.stdout


@pytest.mark.parametrize(
    ("written", "broken", "missing"),
    [
        (
            {"loads"},
            set(),
            {
                "gateway",
                "matching",
                "recovery",
                "loads-balanced",
                "baselines",
                "fanout",
                "pipeline",
            },
        ),
        (set(bench_figures()) - {"pipeline"}, {"pipeline"}, {"pipeline"}),
    ],
)
def test_the_plot_draws_what_there_is_when_figures_are_missing_or_broken(
    tmp_path: Path, written: set[str], broken: set[str], missing: set[str]
) -> None:
    for name, document in bench_figures().items():
        if name in written:
            (tmp_path / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    for name in broken:
        (tmp_path / f"{name}.json").write_text("{not json", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plot.py"), f"--dir={tmp_path}", "--svg-only"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "bench.png").exists()
    svg = (tmp_path / "bench.svg").read_text(encoding="utf-8")
    assert "not in this run: " + ", ".join(sorted(missing)) in svg
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["missing"]) == missing
    assert summary["ratios"]["pipeline_over_client"] is None
