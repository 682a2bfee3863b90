"""Weighing a lot the way an operator does, through the front doors: load the (simulated) scale,
wait for the stable light, scan the lot, take the load off and wait for the scale to return to
zero. Used by the demo feed and the end-to-end tests.
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class WeighingFailed(RuntimeError):
    """The scale or the service refused the weighing; the message carries their reason."""


def wait_scale(
    http: httpx.Client, ingest: str, station: str, want: str, timeout_s: float = 20.0
) -> dict[str, Any]:
    """Poll the station's scale until ``want`` holds: "stable" (a load to take) or "empty"."""
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = http.get(f"{ingest}/stations/{station}/scale").json()
        if want == "stable" and view.get("stable") and not view.get("taken"):
            return view
        if want == "empty" and view.get("status") == "empty":
            return view
        time.sleep(0.1)
    raise WeighingFailed(f"scale {station} not {want} within {timeout_s:.0f}s: {view}")


def load(http: httpx.Client, scales: str, station: str, kg: str) -> None:
    http.post(f"{scales}/scales/{station}/load", json={"kg": kg}).raise_for_status()


def unload(http: httpx.Client, scales: str, station: str) -> None:
    http.post(f"{scales}/scales/{station}/unload").raise_for_status()


def weigh_crates(
    http: httpx.Client,
    ingest: str,
    scales: str,
    station: str,
    gross_kg: str,
    lot: dict[str, Any],
    print_ticket: bool = True,
) -> dict[str, Any]:
    """Weigh one lot of crates on a platform scale; returns its ticket (existing if repeated)."""
    load(http, scales, station, gross_kg)
    try:
        wait_scale(http, ingest, station, "stable")
        response = http.post(f"{ingest}/stations/{station}/weighings", json=lot)
        if response.status_code not in (200, 201):
            raise WeighingFailed(f"{lot['lot_id']}: {response.status_code} {response.text}")
        ticket: dict[str, Any] = response.json()
        if print_ticket and response.status_code == 201:
            http.post(
                f"{ingest}/stations/{station}/tickets/{ticket['ticket_no']}/prints",
                json={"operator_id": lot["operator_id"]},
            ).raise_for_status()
        return ticket
    finally:
        unload(http, scales, station)
        wait_scale(http, ingest, station, "empty")
