"""Runs the whole hall on one machine: broker, topics, the services as separate processes.

The processes: the scale simulator (three indicators, standing in for the weigh stations'
scales), the scale gateway, ingest, the pricing worker and API, and dispatch.

``python -m melon_devkit.hall run`` (what ``make run`` calls) starts everything, feeds a small
demo day through the front doors, prints the URLs and keeps running until Ctrl-C.
The end-to-end tests use the same ``Hall`` with their own broker, ports and folders.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from melon_contracts.admin import ensure_topics
from melon_contracts.units import yuan_to_fen
from melon_devkit.demo import DEMO_ACCOUNTS, demo_token
from melon_devkit.kafka import Broker, BrokerError, free_port, kafka_version, local_broker
from melon_devkit.paths import var_dir
from pricing.accounts import Accounts


class HallError(RuntimeError):
    """A service did not start or did not become healthy."""


@dataclass(frozen=True)
class Ports:
    ingest: int = 8001
    pricing: int = 8002
    dispatch: int = 8003
    gateway: int = 8011
    """The scale gateway's metrics."""
    matcher: int = 8012
    """The pricing worker's metrics."""
    scales: int = 4100
    """The scale simulator's control API."""
    ws1: int = 4001
    ws2: int = 4002
    ts1: int = 4003

    @classmethod
    def free(cls) -> Ports:
        """Every port a free one, so a hall (tests, benches) runs beside the one on the defaults."""
        return cls(**{name: free_port() for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Scale:
    """A weigh station's scale: its simulated indicator and what the ingest service is told."""

    station: str
    port_name: str
    protocol: str
    kind: str
    division_g: int
    capacity_kg: int


SCALES = (
    Scale("ws-1", "ws1", "mt-sics", "platform", 200, 1_000),
    Scale("ws-2", "ws2", "xk3190", "platform", 200, 1_000),
    Scale("ts-1", "ts1", "xk3190", "truck", 20_000, 60_000),
)
"""Two platform scales (Max 1000 kg, d 0.2 kg) and a truck scale (Max 60 t, d 20 kg)."""


@dataclass
class ServiceProcess:
    """One service process: how to start it, where it logs, how to tell it is ready."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_file: Path
    health_url: str | None = None
    ready_line: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0

    @property
    def pid_file(self) -> Path:
        return self.log_file.parent.parent / "run" / f"{self.name}.pid"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(self.process.pid), encoding="utf-8")

    def ready(self) -> bool:
        if self.health_url is not None:
            try:
                return httpx.get(self.health_url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        if self.ready_line is not None:
            with self.log_file.open("rb") as log:
                log.seek(self.log_offset)
                return self.ready_line.encode() in log.read()
        return True

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None
        self.pid_file.unlink(missing_ok=True)

    def stop_leftover(self) -> bool:
        """Stop a process of this service that an earlier, ended hall left running."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return False
        self.pid_file.unlink(missing_ok=True)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True


@dataclass
class Hall:
    """The three services (pricing as API and worker) against one broker."""

    bootstrap: str
    home: Path
    ports: Ports = field(default_factory=Ports)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        logs = self.home / "log"
        base = {"PYTHONUNBUFFERED": "1"}
        stations = [
            {
                "id": scale.station,
                "kind": scale.kind,
                "division_g": scale.division_g,
                "max_kg": str(scale.capacity_kg),
            }
            for scale in SCALES
        ]
        indicators = [
            {
                "station": scale.station,
                "host": "127.0.0.1",
                "port": getattr(self.ports, scale.port_name),
                "protocol": scale.protocol,
            }
            for scale in SCALES
        ]
        simulated = [
            f"--station={scale.station}:{getattr(self.ports, scale.port_name)}:{scale.protocol}:"
            f"division_g={scale.division_g},capacity_kg={scale.capacity_kg},settle_s=1.0"
            for scale in SCALES
        ]
        self.services = {
            "scales": ServiceProcess(
                "scales",
                [
                    "-m",
                    "melon_devkit.scalesim",
                    *simulated,
                    f"--control-port={self.ports.scales}",
                    "--rate=10",
                ],
                base,
                logs / "scales.log",
                health_url=f"{self.url('scales')}/scales",
            ),
            "ingest": ServiceProcess(
                "ingest",
                ["-m", "ingest"],
                {
                    **base,
                    "INGEST_BOOTSTRAP": self.bootstrap,
                    "INGEST_PORT": str(self.ports.ingest),
                    "INGEST_STATIONS": json.dumps(stations),
                },
                logs / "ingest.log",
                health_url=f"{self.url('ingest')}/healthz",
            ),
            "gateway": ServiceProcess(
                "gateway",
                ["-m", "ingest.gateway"],
                {
                    **base,
                    "INGEST_BOOTSTRAP": self.bootstrap,
                    "INGEST_SCALES": json.dumps(indicators),
                    "INGEST_GATEWAY_METRICS_PORT": str(self.ports.gateway),
                },
                logs / "gateway.log",
                health_url=f"{self.url('gateway')}/metrics",
            ),
            "pricing-worker": ServiceProcess(
                "pricing-worker",
                ["-m", "pricing", "worker"],
                {
                    **base,
                    "PRICING_BOOTSTRAP": self.bootstrap,
                    "PRICING_WORKER_DATA_DIR": str(self.home / "pricing-worker"),
                    "PRICING_WORKER_METRICS_PORT": str(self.ports.matcher),
                },
                logs / "pricing-worker.log",
                ready_line="[^Worker]: Ready",
            ),
            "pricing-api": ServiceProcess(
                "pricing-api",
                ["-m", "pricing", "api"],
                {
                    **base,
                    "PRICING_BOOTSTRAP": self.bootstrap,
                    "PRICING_PORT": str(self.ports.pricing),
                    "PRICING_MERCHANTS_FILE": str(self.merchants_file),
                },
                logs / "pricing-api.log",
                health_url=f"{self.url('pricing')}/healthz",
            ),
            "dispatch": ServiceProcess(
                "dispatch",
                ["-m", "dispatch"],
                {
                    **base,
                    "DISPATCH_BOOTSTRAP": self.bootstrap,
                    "DISPATCH_PORT": str(self.ports.dispatch),
                },
                logs / "dispatch.log",
                health_url=f"{self.url('dispatch')}/healthz",
            ),
        }

    @property
    def merchants_file(self) -> Path:
        return self.home / "pricing" / "merchants.json"

    def make_demo_accounts(self) -> None:
        """The demo merchants and the cooperative, with the demo's well-known tokens."""
        accounts = Accounts.load(self.merchants_file)
        for account_id, name, limit_yuan, role in DEMO_ACCOUNTS:
            accounts.add(
                account_id, name, yuan_to_fen(limit_yuan), role=role, token=demo_token(account_id)
            )

    def add_dispatch(
        self, name: str, port: int, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        """One more dispatch instance, on its own port against the same broker.

        Start it with ``start([name])``. Instances share nothing but the yard's log, so any number
        may run side by side.
        """
        hall_dispatch = self.services["dispatch"]
        process = ServiceProcess(
            name,
            list(hall_dispatch.args),
            {**hall_dispatch.env, "DISPATCH_PORT": str(port), **(env or {})},
            hall_dispatch.log_file.with_name(f"{name}.log"),
            health_url=f"http://127.0.0.1:{port}/healthz",
        )
        self.services[name] = process
        return process

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}"

    def pids(self) -> dict[str, int]:
        """The process id of each service running now."""
        return {
            name: service.process.pid
            for name, service in self.services.items()
            if service.process is not None and service.process.poll() is None
        }

    def start(self, names: list[str] | None = None, timeout_s: float = 90.0) -> float:
        """Start services (all by default) and wait until each is ready; returns seconds taken."""
        began = time.monotonic()
        chosen = [self.services[name] for name in (names or list(self.services))]
        for service in chosen:
            service.start()
        deadline = began + timeout_s
        waiting = list(chosen)
        while waiting:
            for service in list(waiting):
                code = service.exited()
                if code is not None:
                    raise HallError(
                        f"{service.name} exited with {code}; see {service.log_file}\n"
                        + _tail(service.log_file)
                    )
                if service.ready():
                    waiting.remove(service)
            if time.monotonic() > deadline:
                names_left = ", ".join(s.name for s in waiting)
                raise HallError(f"not ready after {timeout_s:.0f}s: {names_left}")
            time.sleep(0.3)
        return time.monotonic() - began

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def run(with_demo: bool = True) -> int:
    # Ctrl-C and SIGTERM both end the hall cleanly, even when started from a shell that ignores
    # SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    broker = local_broker()
    print(f"Melon Hall: starting Apache Kafka {kafka_version()} (KRaft) ...", flush=True)
    try:
        took = broker.start()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"  broker on {broker.bootstrap} ({took:.1f}s)", flush=True)
    created = ensure_topics(broker.bootstrap)
    print(f"  topics ready ({len(created)} created)", flush=True)
    hall = Hall(bootstrap=broker.bootstrap, home=var_dir())
    for service in hall.services.values():
        service.stop_leftover()
    if with_demo:
        hall.make_demo_accounts()
    try:
        print(
            "  starting the scale simulator, scale gateway, ingest, pricing worker, pricing API, "
            "dispatch ...",
            flush=True,
        )
        took = hall.start()
        print(f"  services ready ({took:.1f}s); logs in {var_dir() / 'log'}", flush=True)
        if with_demo:
            # Imported here: the simulated day builds on this module's ports and scales.
            from melon_devkit.simday import Urls, demo_day

            demo_day(Urls.local(hall.ports), out=sys.stdout)
        _print_urls(hall, broker)
        while all(service.exited() is None for service in hall.services.values()):
            time.sleep(1)
        dead = [s.name for s in hall.services.values() if s.exited() is not None]
        print(f"stopped: {', '.join(dead)} exited; see {var_dir() / 'log'}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    except HallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping the services and the broker ...", flush=True)
        hall.stop()
        broker.stop()


def _print_urls(hall: Hall, broker: Broker) -> None:
    print(
        "\nMelon Hall is up:\n"
        f"  ingest   (weigh stations)  {hall.url('ingest')}/docs\n"
        f"  operator console           {hall.url('ingest')}/console?station=ws-1\n"
        f"  scale simulator            {hall.url('scales')}/scales\n"
        f"  gateway metrics            {hall.url('gateway')}/metrics\n"
        f"  matcher metrics            {hall.url('matcher')}/metrics\n"
        f"  pricing  (trading hall)    {hall.url('pricing')}/docs   board: "
        f"{hall.url('pricing')}/board\n"
        f"  LED wall price board       {hall.url('pricing')}/wall\n"
        f"  merchant page              {hall.url('pricing')}/merchant   "
        "(demo token: demo-merchant-lanzhou)\n"
        f"  dispatch (trucks)          {hall.url('dispatch')}/docs\n"
        f"  dispatch board             {hall.url('dispatch')}/dispatch\n"
        f"  Kafka                      {broker.bootstrap}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


def stop() -> int:
    hall = Hall(bootstrap=local_broker().bootstrap, home=var_dir())
    stopped = [s.name for s in hall.services.values() if s.stop_leftover()]
    print(f"stopped: {', '.join(stopped)}" if stopped else "no services were running")
    print("Kafka stopped" if local_broker().stop() else "Kafka was not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="melon_devkit.hall", description=__doc__)
    parser.add_argument("action", choices=["run", "stop"])
    parser.add_argument("--no-demo", action="store_true", help="start the hall without demo data")
    args = parser.parse_args(argv)
    return run(with_demo=not args.no_demo) if args.action == "run" else stop()


if __name__ == "__main__":
    sys.exit(main())
