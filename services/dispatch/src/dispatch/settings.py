"""Dispatch settings, read from ``DISPATCH_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the broker is, where the API listens, the yard's bays and the planner's budget."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_")

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8003
    log_level: str = "INFO"
    bays: int = Field(default=6, ge=1, le=99, description="Loading bays, numbered from 1")
    plan_time_limit_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How long the optimiser may look for a better load, per pass (at most two)",
    )
    plan_workers: int = Field(default=1, ge=1, le=16, description="CP-SAT search workers")
