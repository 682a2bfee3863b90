"""What the Melon Hall benches share: a broker of their own in a temporary folder, the machine
a run was on, percentiles, and the JSON document a run writes."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from melon_devkit.kafka import Broker, BrokerError, free_port


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank of an ascending list; 0.0 for an empty one."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine(**extra: Any) -> dict[str, Any]:
    """The Python, platform and CPU count a run had, then what the bench adds."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **extra,
    }


def load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def start_broker(home: Path, attempts: int = 3) -> tuple[Broker, float]:
    """A broker of the run's own on free ports, and the seconds its start took.

    A port another program takes between being chosen and being bound fails the start, and so
    does, now and then, formatting the storage (a random cluster id that begins with '-' reads
    as an option); either is tried again, on other ports in another folder.
    """
    for attempt in range(attempts):
        broker = Broker(
            home=home / f"kafka-{attempt}", port=free_port(), controller_port=free_port()
        )
        try:
            return broker, broker.start()
        except BrokerError:
            broker.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def workdir(keep: Path | None, prefix: str) -> Iterator[Path]:
    """``keep`` when given, kept afterwards; else a temporary folder, removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_json(path: Path, document: dict[str, Any], ensure_ascii: bool = True) -> None:
    """Write a run's figures, indented, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=ensure_ascii)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"written to {path}")
