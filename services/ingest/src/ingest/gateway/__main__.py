"""``python -m ingest.gateway``: relay the configured scales to Kafka until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.runner import Gateway
from ingest.gateway.settings import GatewaySettings
from ingest.gateway.sinks import KafkaReadingSink
from melon_contracts.transport import configure_logging

log = logging.getLogger("ingest.gateway")


async def serve(gateway: Gateway, settings: GatewaySettings) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, gateway.stop)
    scales = ", ".join(
        f"{scale.station} {scale.protocol} at {scale.host}:{scale.port}"
        for scale in settings.scales
    )
    metrics = (
        f"http://{settings.gateway_metrics_host}:{settings.gateway_metrics_port}/metrics"
        if settings.gateway_metrics_port
        else "off"
    )
    log.info("gateway ready: session %s; %s; metrics %s", gateway.session, scales, metrics)
    await gateway.run()


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    metrics = GatewayMetrics()
    server = None
    if settings.gateway_metrics_port:
        server, _ = start_http_server(
            settings.gateway_metrics_port, addr=settings.gateway_metrics_host
        )
    sink = KafkaReadingSink(settings.bootstrap, metrics)
    gateway = Gateway(
        settings.scales, sink, metrics, idle_timeout_s=settings.gateway_idle_timeout_s
    )
    try:
        asyncio.run(serve(gateway, settings))
    finally:
        sink.close()
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    main()
