"""Dispatch settings, read from ``DISPATCH_*`` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the broker is and where the HTTP API listens."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_")

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8003
    log_level: str = "INFO"
