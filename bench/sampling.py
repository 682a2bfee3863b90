"""Where a service's CPU goes: py-spy samples of its Python threads while a bench runs.

    python bench/sampling.py FILE [--seconds S] [--rate HZ]     (summarise a raw record)

``Sampler`` runs ``py-spy record --gil --nonblocking --format raw`` against each process for a
while; py-spy reads the process from outside (it needs ptrace), so the service runs unchanged.
A raw record holds collapsed stacks, one ``thread;frame;...;frame count`` per line, of the
moments a thread held the GIL: the process's Python CPU. ``summarise`` turns one into shares of
those samples: each function by itself (``self``), and ``own``: each sample charged to the
deepest of the hall's own functions (``OWN``) on its stack, with what it called in libraries,
so a JSON encoder busy for ``Book.to_dict`` counts for ``Book.to_dict``; a sample with no own
frame at all counts for the library it was in, as ``[aiokafka]``.

C code that lets the GIL go (socket I/O, the CP-SAT solver) is not in the samples; the benches'
``/proc`` CPU shares count it. ``gil_held`` is the share of the time some thread held the GIL,
on a CPU or waiting for one: on a machine with every core busy it is above the CPU share.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWN = ("ingest/", "pricing/", "dispatch/", "melon_contracts/", "melon_devkit/")
"""Source paths of the hall's own code as py-spy prints them."""
RATE_HZ = 100
TOP = 12
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """The py-spy beside this interpreter (the project's virtual environment), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def frame_name(frame: str) -> str:
    """``handle (pricing/worker.py:88)`` -> ``handle (pricing/worker.py)``: lines merged."""
    return _LINE.sub(")", frame.strip())


def summarise(path: Path, seconds: float, rate_hz: int = RATE_HZ, top: int = TOP) -> dict[str, Any]:
    """Shares of a raw py-spy record's samples, per function, by itself and in total."""
    leaf: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [frame_name(f) for f in stack.split(";")[1:] if f.strip()]
        if not frames:
            continue
        leaf[frames[-1]] += n
        charged[charge(frames)] += n

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "share": round(n / samples, 3)} for f, n in counter.most_common(top)
        ]

    expected = seconds * rate_hz
    return {
        "samples": samples,
        "gil_held": round(samples / expected, 3) if expected else 0.0,
        "self": shares(leaf),
        "own": shares(charged),
    }


def charge(frames: list[str]) -> str:
    """The deepest own frame of a stack, else ``[package]`` of its innermost frame."""
    for frame in reversed(frames):
        if any(f"({prefix}" in frame for prefix in OWN):
            return frame
    inner = frames[-1]
    path = inner[inner.rfind("(") + 1 :].rstrip(")")
    return f"[{path.split('/', 1)[0].removesuffix('.py')}]"


@dataclass
class Recording:
    name: str
    pid: int
    out: Path
    process: subprocess.Popen[bytes]


class Sampler:
    """py-spy against several processes at once, for ``seconds``; ``finish`` summarises."""

    def __init__(self, out_dir: Path, seconds: float, rate_hz: int = RATE_HZ) -> None:
        self.out_dir = out_dir
        self.seconds = seconds
        self.rate_hz = rate_hz
        self.recordings: list[Recording] = []
        self.errors: dict[str, str] = {}

    def start(self, pids: dict[str, int]) -> None:
        tool = py_spy()
        if tool is None:
            self.errors = {name: "py-spy is not installed" for name in pids}
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            out = self.out_dir / f"{name}.txt"
            command = [
                tool,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(self.seconds))),
                "--rate",
                str(self.rate_hz),
                "--gil",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ]
            log = (self.out_dir / f"{name}.log").open("wb")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            self.recordings.append(Recording(name, pid, out, process))

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Each process's summary, or why there is none (py-spy's own last words)."""
        found: dict[str, Any] = {name: {"error": why} for name, why in self.errors.items()}
        for recording in self.recordings:
            try:
                code = recording.process.wait(timeout=self.seconds + timeout_s)
            except subprocess.TimeoutExpired:
                recording.process.kill()
                code = recording.process.wait()
            if code == 0 and recording.out.exists():
                summary = summarise(recording.out, self.seconds, self.rate_hz)
                found[recording.name] = {"pid": recording.pid, "raw": str(recording.out), **summary}
            else:
                log = self.out_dir / f"{recording.name}.log"
                said = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
                found[recording.name] = {"error": f"py-spy exit {code}: {' '.join(said[-2:])}"}
        return found


def report(profile: dict[str, Any], cpu_share: dict[str, float], top: int = 3) -> str:
    """A few lines: per process its CPU, then the functions its samples are charged to."""
    lines = []
    for name, found in profile.items():
        cpu = cpu_share.get(name)
        head = f"{name:<15} {'' if cpu is None else f'{cpu:.2f} core'}"
        if "error" in found:
            lines.append(f"{head}  (no profile: {found['error']})")
            continue
        busiest = ", ".join(f"{row['function']} {row['share']:.0%}" for row in found["own"][:top])
        hottest = found["self"][0] if found["self"] else None
        lines.append(
            f"{head}  {busiest or '-'}"
            + (
                ""
                if hottest is None
                else f"; hottest: {hottest['function']} {hottest['share']:.0%}"
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="summarise a raw py-spy record")
    parser.add_argument("file", type=Path)
    parser.add_argument("--seconds", type=float, default=0.0, help="how long it recorded")
    parser.add_argument("--rate", type=int, default=RATE_HZ, help="samples a second it took")
    parser.add_argument("--top", type=int, default=TOP)
    args = parser.parse_args(argv)
    summary = summarise(args.file, args.seconds, args.rate, args.top)
    print(f"{summary['samples']} samples holding the GIL\nself:")
    for row in summary["self"]:
        print(f"  {row['share']:6.1%}  {row['function']}")
    print("charged to the deepest own function (or library) on the stack:")
    for row in summary["own"]:
        print(f"  {row['share']:6.1%}  {row['function']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
