"""Whether a service can reach the broker, watched in the background and told the same way by all.

A service whose broker is away still answers reads from memory, but every write it would take
fails: its health must say so. ``BrokerWatch`` asks the broker for its cluster metadata every
second from a thread of its own and keeps the answer: reachable, or unreachable since when and
why. ``/healthz`` reports ``degraded`` with that reason, and the gauges ``melon_broker_reachable``
and ``melon_health_degraded{reason}`` say the same to Prometheus."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Gauge

from melon_contracts.transport import KAFKA_CLIENT_TIMING

log = logging.getLogger(__name__)

BROKER_REACHABLE = Gauge(
    "melon_broker_reachable", "1 while the service's last look at the broker got an answer"
)
DEGRADED = Gauge("melon_health_degraded", "1 while the service is degraded, by reason", ["reason"])
BROKER_UNREACHABLE = "broker_unreachable"


class Probe(Protocol):
    def __call__(self) -> None:
        """Return when the broker answered; raise when it did not."""


@dataclass(frozen=True)
class BrokerState:
    reachable: bool
    since: datetime
    reason: str = ""

    def describe(self) -> str:
        when = self.since.isoformat(timespec="seconds")
        return f"unreachable since {when}: {self.reason}" if not self.reachable else "reachable"


class BrokerWatch:
    """Looks at the broker every ``every_s`` seconds in a daemon thread."""

    def __init__(self, bootstrap: str, every_s: float = 1.0, probe: Probe | None = None) -> None:
        self._bootstrap = bootstrap
        self._every_s = every_s
        self._probe = probe or self._metadata
        self._admin: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-watch", daemon=True)
        self.state = BrokerState(reachable=True, since=datetime.now(UTC))
        BROKER_REACHABLE.set(1)
        DEGRADED.labels(BROKER_UNREACHABLE).set(0)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=timeout_s)
        if self._admin is not None:
            self._admin.close()

    def look(self) -> BrokerState:
        """Ask the broker once and keep what it said (or did not)."""
        try:
            self._probe()
        except Exception as exc:
            if self.state.reachable:
                log.warning("the broker at %s does not answer: %s", self._bootstrap, exc)
                self.state = BrokerState(False, datetime.now(UTC), f"{type(exc).__name__}: {exc}")
        else:
            if not self.state.reachable:
                log.warning("the broker at %s answers again", self._bootstrap)
                self.state = BrokerState(True, datetime.now(UTC))
        BROKER_REACHABLE.set(1 if self.state.reachable else 0)
        DEGRADED.labels(BROKER_UNREACHABLE).set(0 if self.state.reachable else 1)
        return self.state

    def degraded(self) -> dict[str, str]:
        """Why the service is degraded, by reason; empty while the broker answers."""
        if self.state.reachable:
            return {}
        return {BROKER_UNREACHABLE: self.state.describe()}

    def _metadata(self) -> None:
        from kafka import KafkaAdminClient

        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self._bootstrap,
                client_id="melon-broker-watch",
                request_timeout_ms=2000,
                **KAFKA_CLIENT_TIMING,
            )
        try:
            self._admin.describe_cluster()
        except Exception:
            # A client that lost its broker can stay stuck on a dead connection: start afresh.
            admin, self._admin = self._admin, None
            admin.close()
            raise

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.look()
            self._stop.wait(max(0.0, self._every_s - (time.monotonic() - began)))


def health(
    waiting: dict[str, str],
    degraded: dict[str, str],
    attention: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """The status code and body of every service's ``/healthz``.

    ``starting`` (503) while a reader catches up, naming each; ``degraded`` (503) while the
    service can read but not write (``degraded`` names why); ``degraded`` (200) while it works
    but something needs a person (``attention``, e.g. a damaged record fenced off); ``ok`` (200).
    The status code says whether the service takes writes, the body what is wrong.
    """
    reasons = {**(attention or {}), **degraded}
    if waiting:
        return 503, {"status": "starting", "waiting": waiting, "degraded": reasons}
    if degraded:
        return 503, {"status": "degraded", "degraded": reasons}
    if reasons:
        return 200, {"status": "degraded", "degraded": reasons}
    return 200, {"status": "ok"}
