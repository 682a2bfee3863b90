"""The recovery benchmark needs a broker and minutes per size, so CI only checks that it refuses,
before starting anything, the sizes it cannot measure in bounded time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("sizes", "says"),
    [
        ("90000", "longer than --max-seconds"),
        ("0", "sizes are 1 to"),
        ("100,many", "not a list of whole numbers"),
    ],
)
def test_the_recovery_benchmark_refuses_sizes_it_cannot_measure(sizes: str, says: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_recovery.py"), f"--sizes={sizes}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert says in run.stderr
    assert "broker" not in run.stdout
