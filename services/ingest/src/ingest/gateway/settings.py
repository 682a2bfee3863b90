"""The gateway's configuration from the environment, every name prefixed ``INGEST_``.

``INGEST_SCALES`` is a JSON array with one object per weigh station's indicator, for example
``[{"station": "ws-1", "host": "10.0.4.21", "port": 4001, "protocol": "mt-sics"}]``; ``host`` and
``port`` are the serial-to-Ethernet converter's TCP server, ``unit`` (default kg) is what an
XK3190 indicator is set to show, since its frames do not say.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.domain.frames import Unit, WireProtocol
from melon_contracts.reference import Identifier

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ScaleConfig(BaseModel):
    """Where one station's indicator is reachable and which wire format it speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    station: Identifier
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65_535)
    protocol: WireProtocol
    unit: Unit = "kg"


def default_scales() -> list[ScaleConfig]:
    """The hall's three stations on the scale simulator's default ports."""
    return [
        ScaleConfig(station="ws-1", port=4001, protocol="mt-sics"),
        ScaleConfig(station="ws-2", port=4002, protocol="xk3190"),
        ScaleConfig(station="ws-3", port=4003, protocol="mt-sics"),
    ]


class GatewaySettings(BaseSettings):
    """Where the broker is, which indicators to read, where to serve metrics (port 0: nowhere)."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    scales: list[ScaleConfig] = Field(default_factory=default_scales, min_length=1)
    gateway_metrics_host: str = "127.0.0.1"
    gateway_metrics_port: int = Field(default=8011, ge=0, le=65_535)
    gateway_idle_timeout_s: float = Field(default=10.0, gt=0, le=3_600)
    """A connection that delivers no byte for this long is dropped and opened again."""
    log_level: LogLevel = "INFO"

    @field_validator("scales")
    @classmethod
    def _one_indicator_per_station(cls, scales: list[ScaleConfig]) -> list[ScaleConfig]:
        seen: set[str] = set()
        for scale in scales:
            if scale.station in seen:
                raise ValueError(f"station {scale.station} is listed twice in INGEST_SCALES")
            seen.add(scale.station)
        return scales

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
