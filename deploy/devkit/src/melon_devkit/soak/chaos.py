"""The soak's chaos: which process dies when, and the thread that kills, restarts and times it.

The schedule is drawn up front from the seed: service kills dealt out in rounds over the five
services that can be killed (each round in a shuffled order, so each service is killed about as
often as the others), broker kills among them, each at a moment of the run and with a time it
stays down. The thread then works through it in order, one event at a time: SIGKILL (no warning,
as a power cut or the kernel's OOM killer gives none), wait the down time, start the process
again and time how long it takes to answer:

- a service until its health check is 200 again (``Hall``'s readiness: ``/healthz``; the gateway's
  ``/metrics``; the pricing worker's "Ready" line, as faust has no health endpoint);
- the broker until a write to it is acknowledged again (``acks=all``), and until every service's
  health is 200 again.

Between events it watches for a process that died on its own; that is a finding, and the process
is started again so the rest of the day can still be judged.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.errors import KafkaError

from melon_contracts.transport import KAFKA_CLIENT_TIMING
from melon_devkit.hall import Hall, HallError
from melon_devkit.kafka import Broker, BrokerError

KILLABLE = ("ingest", "gateway", "pricing-worker", "pricing-api", "dispatch")
"""The services the soak kills; the scale simulator stands in for the scales and stays up."""
BROKER = "broker"
PROBE_TOPIC = "soak.probe"
"""A topic of the soak's own broker that only the broker probe writes: no service reads it."""
SERVICE_DOWN_S = (0.3, 3.0)
BROKER_DOWN_S = (2.0, 6.0)
FIRST_KILL_AT = 0.08
LAST_KILL_AT = 0.85
"""Kills fall between these fractions of the run, so the day is under way at the first one and
the last one's recovery is still in the day."""
START_ATTEMPTS = 3
HEALTH_URLS = ("ingest", "pricing", "dispatch")


@dataclass(frozen=True)
class Kill:
    at_s: float
    """Seconds after the day started."""
    target: str
    """A service of ``KILLABLE`` or ``BROKER``."""
    down_s: float


def kill_schedule(
    seed: int,
    kills: int,
    broker_kills: int,
    duration_s: float,
    services: Sequence[str] = KILLABLE,
) -> list[Kill]:
    """The run's kills in time order: ``kills`` service kills dealt out in rounds, so no service
    is killed twice more than another, and ``broker_kills`` broker kills among them."""
    if kills < 0 or broker_kills < 0:
        raise ValueError("the number of kills is 0 or more")
    rng = random.Random(f"melon-hall soak {seed}")
    targets: list[str] = []
    while len(targets) < kills:
        round_ = list(services)
        rng.shuffle(round_)
        targets += round_
    targets = targets[:kills] + [BROKER] * broker_kills
    rng.shuffle(targets)
    times = sorted(
        rng.uniform(FIRST_KILL_AT * duration_s, LAST_KILL_AT * duration_s) for _ in targets
    )
    return [
        Kill(
            round(at, 2),
            target,
            round(rng.uniform(*(BROKER_DOWN_S if target == BROKER else SERVICE_DOWN_S)), 2),
        )
        for at, target in zip(times, targets, strict=True)
    ]


@dataclass
class Restart:
    """One process killed (or found dead) and started again, with how long it took to answer."""

    target: str
    at_s: float
    down_s: float
    planned: bool
    recovery_s: float | None = None
    """From the restart until it answered again; None if it never did."""
    answering_s: float | None = None
    """For the broker: from its restart until it answered a client's metadata request."""
    healthy_s: float | None = None
    """For the broker: from its restart until every service's health was 200 again."""
    attempts: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ChaosLog:
    restarts: list[Restart] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, restart: Restart) -> None:
        with self.lock:
            self.restarts.append(restart)

    def snapshot(self) -> list[Restart]:
        with self.lock:
            return list(self.restarts)


class Chaos(threading.Thread):
    """Works through the kill schedule against a hall and its broker; see the module's doc."""

    def __init__(
        self,
        hall: Hall,
        broker: Broker,
        schedule: Sequence[Kill],
        began: float,
        say: Callable[[str], None],
        restart_timeout_s: float = 120.0,
    ) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.hall = hall
        self.broker = broker
        self.schedule = list(schedule)
        self.began = began
        self.say = say
        self.restart_timeout_s = restart_timeout_s
        self.log = ChaosLog()
        self.stop = threading.Event()
        """Set to end the schedule early (the run's deadline, Ctrl-C)."""
        self.done = threading.Event()
        self.broker_back: list[float] = []
        """Monotonic moments the broker was started again, to find the first write after each."""

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def run(self) -> None:
        try:
            for kill in self.schedule:
                while not self.stop.is_set() and self.elapsed() < kill.at_s:
                    self.watch()
                    self.stop.wait(0.5)
                if self.stop.is_set():
                    return
                if kill.target == BROKER:
                    self._kill_broker(kill)
                else:
                    self._kill_service(kill)
        finally:
            self.done.set()

    def watch(self) -> None:
        """Start again any service that died without being killed; it is recorded as a finding."""
        for name, service in self.hall.services.items():
            code = service.exited()
            if code is None:
                continue
            self.say(
                f"{name} exited on its own with {code}; last lines of its log:\n"
                + tail(service.log_file, 15)
            )
            restart = Restart(name, round(self.elapsed(), 2), 0.0, planned=False)
            restart.note = f"exited on its own with {code}"
            self._start(restart)
            self.log.add(restart)

    def _kill_service(self, kill: Kill) -> None:
        service = self.hall.services[kill.target]
        process = service.process
        if process is None or process.poll() is not None:
            self.watch()
            process = service.process
        restart = Restart(kill.target, round(self.elapsed(), 2), kill.down_s, planned=True)
        pid = process.pid if process is not None else None
        service.signal(signal.SIGKILL)
        if process is not None:
            process.wait(timeout=10)
        self.stop.wait(kill.down_s)
        self._start(restart)
        took = "never" if restart.recovery_s is None else f"{restart.recovery_s:.1f} s"
        self.say(
            f"{kill.target} killed at {restart.at_s:.1f} s (SIGKILL, pid {pid}), down "
            f"{kill.down_s:.1f} s; answering again {took} after its restart"
        )
        self.log.add(restart)

    def _start(self, restart: Restart) -> None:
        while restart.attempts < START_ATTEMPTS:
            restart.attempts += 1
            try:
                restart.recovery_s = round(
                    self.hall.start([restart.target], timeout_s=self.restart_timeout_s), 2
                )
                return
            except HallError as exc:
                restart.note = f"{restart.note}; start {restart.attempts}: {exc}".strip("; ")
                self.say(f"{restart.target} did not come back: {exc}")
                self.hall.services[restart.target].stop(timeout_s=5)

    def _kill_broker(self, kill: Kill) -> None:
        restart = Restart(BROKER, round(self.elapsed(), 2), kill.down_s, planned=True)
        self.broker.kill()
        self.stop.wait(kill.down_s)
        while restart.attempts < START_ATTEMPTS and restart.recovery_s is None:
            restart.attempts += 1
            started = time.monotonic()
            try:
                self.broker.start(timeout_s=self.restart_timeout_s)
            except BrokerError as exc:
                restart.note = f"{restart.note}; start {restart.attempts}: {exc}".strip("; ")
                self.say(f"the broker did not come back: {exc}")
                continue
            self.broker_back.append(started)
            restart.answering_s = round(time.monotonic() - started, 2)
            written = probe_write(self.broker.bootstrap, self.restart_timeout_s)
            if written is not None:
                restart.recovery_s = round(time.monotonic() - started, 2)
                healthy = all_healthy(self.hall, self.restart_timeout_s)
                if healthy:
                    restart.healthy_s = round(time.monotonic() - started, 2)
        took = "never" if restart.recovery_s is None else f"{restart.recovery_s:.1f} s"
        healthy_s = "never" if restart.healthy_s is None else f"{restart.healthy_s:.1f} s"
        self.say(
            f"the broker killed at {restart.at_s:.1f} s (SIGKILL), down {kill.down_s:.1f} s; "
            f"answering {restart.answering_s} s after its restart, a write acknowledged after "
            f"{took}, every service healthy after {healthy_s}"
        )
        self.log.add(restart)


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def ensure_probe_topic(bootstrap: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="melon-soak")
    try:
        admin.create_topics([NewTopic(PROBE_TOPIC, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def probe_write(bootstrap: str, timeout_s: float) -> float | None:
    """Seconds until a write to the probe topic is acknowledged by the broker; None if none was
    within ``timeout_s``."""
    began = time.monotonic()
    deadline = began + timeout_s
    producer: KafkaProducer | None = None
    try:
        while time.monotonic() < deadline:
            try:
                if producer is None:
                    producer = KafkaProducer(
                        bootstrap_servers=bootstrap,
                        client_id="melon-soak-probe",
                        acks="all",
                        request_timeout_ms=3000,
                        max_block_ms=3000,
                        **KAFKA_CLIENT_TIMING,
                    )
                producer.send(PROBE_TOPIC, b"probe").get(timeout=5)
                return time.monotonic() - began
            except KafkaError:
                time.sleep(0.2)
        return None
    finally:
        if producer is not None:
            producer.close(timeout=2)


def all_healthy(hall: Hall, timeout_s: float) -> bool:
    """Poll the three services' health until each is 200, for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(_healthy(f"{hall.url(name)}/healthz") for name in HEALTH_URLS):
            return True
        time.sleep(0.25)
    return False


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
