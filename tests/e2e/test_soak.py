"""The kill soak at CI size: a short day through the front doors while every service and the
broker are SIGKILLed and started again, then every acknowledged operation looked for on the topics.

It runs ``python -m melon_devkit.soak`` as a separate process with a broker and hall of its own
(``make soak`` runs the same at full size). The soak's exit status says whether every invariant
held; the report must also show that the kills happened and the day did something to lose.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from melon_devkit.soak.chaos import KILLABLE

pytestmark = pytest.mark.e2e

SIZE = ["--kills", "5", "--broker-kills", "1", "--duration", "100", "--trucks", "4", "--seed", "3"]
SETTLE = ["--settle-timeout", "90"]
"""Long enough for the hall to catch up after the day; a soak that fails says why within the
bound below instead of being stopped by it."""
RUN_WITHIN_S = 420
"""A bound on the run (it takes about three minutes), so a stuck soak fails instead of hanging."""


def test_a_small_kill_soak_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    report_file = tmp_path / "soak.json"
    command = [sys.executable, "-m", "melon_devkit.soak", *SIZE, *SETTLE]
    command += ["--home", str(tmp_path / "home"), "--json", str(report_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=RUN_WITHIN_S)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the soak stop its hall and broker before it exits.
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
        pytest.fail(f"the soak did not finish within {RUN_WITHIN_S} s:\n{output[-6000:]}")
    print(output)

    assert process.returncode == 0, output[-6000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["ok"]
    assert (report["lost_total"], report["duplicated_total"]) == (0, 0)
    assert "Lost: 0   Duplicated: 0" in output
    # Every service and the broker were killed and came back
    assert report["kills"] == dict.fromkeys(KILLABLE, 1)
    assert report["broker_kills"] == 1
    assert all(len(report["recovery_s"][name]) == 1 for name in [*KILLABLE, "broker"])
    # The day did what there was to lose: weighed, traded, checked trucks in and assigned
    acknowledged = report["operations"]["acknowledged"]
    assert all(acknowledged[kind] > 0 for kind in ("weighing", "bid", "check_in", "assignment"))
    assert report["replay"]["matches"] and report["replay"]["trades"] > 0
    assert report["audit"]["exit_code"] == 0
