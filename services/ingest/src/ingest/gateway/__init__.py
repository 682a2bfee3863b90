"""The scale gateway: reads the weigh stations' indicators over TCP and publishes every frame.

``python -m ingest.gateway`` runs it. Each station's indicator sits behind a serial-to-Ethernet
converter; the gateway connects to it, decodes its wire format (``ingest.domain.frames``) and
writes each reading to ``scale.readings`` keyed by station. Frames it cannot decode are counted
and logged, never fatal. Serial ports are not read directly.
"""

from __future__ import annotations

from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.runner import Gateway
from ingest.gateway.settings import GatewaySettings, ScaleConfig
from ingest.gateway.sinks import KafkaReadingSink, MemorySink, ReadingSink
from ingest.gateway.station import Backoff, StationLink

__all__ = [
    "Backoff",
    "Gateway",
    "GatewayMetrics",
    "GatewaySettings",
    "KafkaReadingSink",
    "MemorySink",
    "ReadingSink",
    "ScaleConfig",
    "StationLink",
]
