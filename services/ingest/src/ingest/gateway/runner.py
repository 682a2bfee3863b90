"""The gateway: one asyncio task per station, all in one event loop, stopped as a whole.

Each reading gets ``reading_id = <station>:<session>:<seq>``: the session is a short random id
drawn when the gateway starts and the sequence counts that station's readings from 1, so ids stay
unique across gateway restarts without any stored state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.settings import ScaleConfig
from ingest.gateway.sinks import ReadingSink
from ingest.gateway.station import DEFAULT_BACKOFF, Backoff, StationLink

log = logging.getLogger("ingest.gateway")


def new_session() -> str:
    return secrets.token_hex(4)


class Gateway:
    """Reads every configured indicator and hands its readings to one sink.

    ``run()`` serves until ``stop()``, which any thread (or a signal handler) may call. Closing
    the sink is the caller's business, after ``run()`` returned. Without ``metrics`` the counts
    go to a registry of the gateway's own, not to the process's default one.
    """

    def __init__(
        self,
        scales: Sequence[ScaleConfig],
        sink: ReadingSink,
        metrics: GatewayMetrics | None = None,
        *,
        session: str | None = None,
        idle_timeout_s: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.session = session or new_session()
        self.metrics = metrics if metrics is not None else GatewayMetrics(CollectorRegistry())
        self.links = {
            scale.station: StationLink(
                scale,
                sink,
                self.metrics,
                self.session,
                idle_timeout_s=idle_timeout_s,
                backoff=backoff,
            )
            for scale in scales
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = threading.Event()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested.is_set():
            return
        tasks = [
            asyncio.create_task(link.run(), name=f"gateway-{station}")
            for station, link in self.links.items()
        ]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("gateway stopped; readings relayed: %s", self._relayed())

    def stop(self) -> None:
        self._stop_requested.set()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)

    def _relayed(self) -> str:
        return ", ".join(f"{station} {link.seq}" for station, link in self.links.items())
