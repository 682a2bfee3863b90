"""Benchmarks are not tests: CI only runs them at a tiny size, to catch breakage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
