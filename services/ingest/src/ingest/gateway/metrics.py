"""What the gateway counts, for Prometheus; every name starts with ``melon_gateway_``.

The metrics are built per registry rather than at import, so tests can read exact counts from a
registry of their own; the process registers them once in the default registry.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    """Readings relayed, frames refused, publishes lost and connection state, per station."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.readings = Counter(
            "melon_gateway_readings",
            "Frames decoded into scale readings and handed to the sink",
            ["station"],
            registry=registry,
        )
        self.malformed = Counter(
            "melon_gateway_malformed_frames",
            "Frames and byte runs the decoder could not use, by reason code",
            ["station", "reason"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "melon_gateway_publish_failures",
            "Readings the broker did not take (errors, timeouts, a full send queue)",
            ["station"],
            registry=registry,
        )
        self.connected = Gauge(
            "melon_gateway_connected",
            "1 while the gateway holds a TCP connection to the station's indicator",
            ["station"],
            registry=registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's value, 0 when never set: ``value("readings_total", station="ws-1")``."""
        sample = self.registry.get_sample_value(f"melon_gateway_{name}", labels)
        return 0.0 if sample is None else sample
