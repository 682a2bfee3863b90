"""Configuration from the environment, every name prefixed ``INGEST_``.

``INGEST_STATIONS`` names the weigh stations: a comma-separated list (``ws-1,ws-2,ts-1:truck``;
a station is a platform scale unless it says ``:truck``) or a JSON array of objects with the
scale's legal parameters (``{"id": "ws-1", "kind": "platform", "max_kg": "600",
"division_g": 200}``). These parameters are used only the first time a station is seen: from then
on the audit trail holds them, and they change through the API, each change a ledger record.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from melon_contracts.reference import Identifier

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class StationSetting(BaseModel):
    """One weigh station and its scale's first parameters (Max, Min, scale interval d)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    kind: Literal["platform", "truck"] = "platform"
    max_kg: Decimal | None = None
    min_load_kg: Decimal | None = None
    division_g: int | None = Field(default=None, gt=0)
    motion_band_d: int = Field(default=1, ge=0, le=10)
    window_ms: int = Field(default=1000, ge=100, le=30_000)
    stale_ms: int = Field(default=2000, ge=200, le=60_000)

    @property
    def resolved(self) -> tuple[int, int, int]:
        """(division_g, max_g, min_load_g) with the kind's defaults filled in."""
        if self.kind == "truck":
            division, max_g = 20_000, 60_000_000
        else:
            division, max_g = 200, 1_000_000
        division = self.division_g or division
        max_g = int(self.max_kg * 1000) if self.max_kg is not None else max_g
        min_g = int(self.min_load_kg * 1000) if self.min_load_kg is not None else 20 * division
        return division, max_g, min_g


def _parse_station(text: str) -> dict[str, Any]:
    station_id, _, kind = text.strip().partition(":")
    return {"id": station_id, "kind": kind or "platform"}


class Settings(BaseSettings):
    """Where the broker is, where to listen and which weigh stations this hall runs."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65_535)
    stations: Annotated[list[StationSetting], NoDecode] = Field(
        default_factory=lambda: [
            StationSetting(id="ws-1"),
            StationSetting(id="ws-2"),
            StationSetting(id="ts-1", kind="truck"),
        ],
        min_length=1,
    )
    log_level: LogLevel = "INFO"

    @field_validator("stations", mode="before")
    @classmethod
    def _split_stations(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                return [_parse_station(part) for part in text.split(",") if part.strip()]
        if isinstance(value, list):
            return [_parse_station(item) if isinstance(item, str) else item for item in value]
        return value

    @field_validator("stations")
    @classmethod
    def _unique(cls, value: list[StationSetting]) -> list[StationSetting]:
        ids = [station.id for station in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a station is named twice in {ids}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def station_ids(self) -> list[str]:
        return [station.id for station in self.stations]
