"""One weigh station's link: connect to its indicator, decode the stream, relay the readings.

Serial-to-Ethernet converters are TCP servers, so the gateway is the client. A link never gives
up: a refused connection, a reset, a silent converter or a bug in one frame's handling ends the
connection, not the link; it reconnects after a delay that starts at 0.2 s and doubles to 5 s,
and starts again at 0.2 s once a connection has delivered data.

Timeouts use ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` can swallow
a cancellation that arrives as the awaited read completes, and a link must stop when told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from ingest.domain.frames import Frame, Malformed, decoder_for
from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.settings import ScaleConfig
from ingest.gateway.sinks import ReadingSink
from ingest.gateway.throttle import Throttle
from melon_contracts.events import ScaleReading

log = logging.getLogger("ingest.gateway")

START_CONTINUOUS = b"SIR\r\n"
"""MT-SICS: send the weight immediately and repeat (a continuous stream of S S / S D lines)."""

READ_SIZE = 4_096
"""Bytes decoded between yields to the event loop: a few hundred frames at most."""


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts: ``first_s``, doubling up to ``max_s``."""

    first_s: float = 0.2
    max_s: float = 5.0

    def after(self, delay_s: float) -> float:
        return min(delay_s * 2, self.max_s)


DEFAULT_BACKOFF = Backoff()


class StationLink:
    """The connection loop of one station; ``run`` returns only when cancelled."""

    def __init__(
        self,
        scale: ScaleConfig,
        sink: ReadingSink,
        metrics: GatewayMetrics,
        session: str,
        *,
        idle_timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.scale = scale
        self.seq = 0
        self._sink = sink
        self._metrics = metrics
        self._session = session
        self._idle_timeout_s = idle_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = backoff
        station = scale.station
        self._readings = metrics.readings.labels(station)
        self._connected = metrics.connected.labels(station)
        self._publish_failures = metrics.publish_failures.labels(station)
        self._malformed_log = Throttle(interval_s=1.0)
        self._sink_log = Throttle(interval_s=1.0)
        self._connected.set(0)

    @property
    def address(self) -> str:
        return f"{self.scale.host}:{self.scale.port}"

    async def run(self) -> None:
        station = self.scale.station
        delay_s = self._backoff.first_s
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    reader, writer = await asyncio.open_connection(self.scale.host, self.scale.port)
            except (OSError, TimeoutError) as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "%s: cannot connect to %s (%s); retrying in %.1f s%s",
                    station,
                    self.address,
                    _why(exc),
                    delay_s,
                    ", further attempts are logged at DEBUG" if failures == 1 else "",
                )
                await asyncio.sleep(delay_s)
                delay_s = self._backoff.after(delay_s)
                continue
            after = f" after {failures} failed attempts" if failures else ""
            protocol = self.scale.protocol
            log.info("%s: connected to %s (%s)%s", station, self.address, protocol, after)
            failures = 0
            self._connected.set(1)
            before = self.seq
            try:
                reason = await self._relay(reader, writer)
            except (OSError, asyncio.IncompleteReadError) as exc:
                reason = _why(exc)
            except Exception as exc:
                log.exception("%s: unexpected error on the connection to %s", station, self.address)
                reason = _why(exc)
            finally:
                self._connected.set(0)
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await writer.wait_closed()
            if self.seq > before:
                delay_s = self._backoff.first_s
            log.warning(
                "%s: disconnected from %s (%s); reconnecting in %.1f s",
                station,
                self.address,
                reason,
                delay_s,
            )
            await asyncio.sleep(delay_s)
            delay_s = self._backoff.after(delay_s)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Decode the stream until it ends; returns why it ended."""
        if self.scale.protocol == "mt-sics":
            writer.write(START_CONTINUOUS)
            await writer.drain()
        decoder = decoder_for(self.scale.protocol, unit=self.scale.unit)
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                return f"no data for {self._idle_timeout_s:g} s"
            if not data:
                return "closed by the converter"
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    self._relay_frame(item)
                else:
                    self._count_malformed(item)
            # A read from a full buffer returns without suspending; yield so that a station
            # streaming faster than it is decoded cannot starve the others and the stop signal.
            await asyncio.sleep(0)

    def _relay_frame(self, frame: Frame) -> None:
        self.seq += 1
        station = self.scale.station
        reading = ScaleReading(
            correlation_id=station,
            station_id=station,
            reading_id=f"{station}:{self._session}:{self.seq}",
            protocol=self.scale.protocol,
            value_g=frame.value_g,
            indicator_stable=frame.stable,
            overload=frame.overload,
            underload=frame.underload,
            raw=frame.raw,
        )
        try:
            self._sink.send(reading)
        except Exception as exc:
            self._publish_failures.inc()
            held = self._sink_log.ready()
            if held is not None:
                log.warning("%s: the sink refused a reading: %s", station, _why(exc))
            return
        self._readings.inc()

    def _count_malformed(self, item: Malformed) -> None:
        station = self.scale.station
        self._metrics.malformed.labels(station, item.reason).inc()
        held = self._malformed_log.ready()
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            log.warning("%s: malformed frame (%s): %s%s", station, item.reason, item.raw, more)


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
