"""Configuration from the environment, every name prefixed ``INGEST_``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from melon_contracts.reference import Identifier

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Where the broker is, where to listen and which weigh stations this hall runs.

    ``INGEST_STATIONS`` takes a comma-separated list (``ws-1,ws-2``) or a JSON array.
    """

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65_535)
    stations: Annotated[list[Identifier], NoDecode] = Field(
        default_factory=lambda: ["ws-1", "ws-2", "ws-3"], min_length=1
    )
    log_level: LogLevel = "INFO"

    @field_validator("stations", mode="before")
    @classmethod
    def _split_stations(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
