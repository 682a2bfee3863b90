"""Settings of the pricing service (env prefix ``PRICING_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from melon_contracts.reference import Grade


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRICING_")

    bootstrap: str = "127.0.0.1:9092"
    host: str = "127.0.0.1"
    port: int = 8002
    log_level: str = "INFO"
    app_id: str = Field(
        default="melon-pricing",
        description="faust application id: names the consumer group and the changelog topics",
    )
    worker_data_dir: str = "var/pricing-worker"
    worker_metrics_port: int = Field(
        default=8012, ge=0, le=65_535, description="The matcher's /metrics; 0 serves none"
    )
    match_batch: int = Field(
        default=64,
        ge=1,
        le=1_000,
        description="Most book commands the matcher applies before one wait for the broker's "
        "acknowledgements; a backlog is worked off in batches this big",
    )
    match_within_ms: int = Field(
        default=5,
        ge=1,
        le=1_000,
        description="Longest a command waits for others to join its batch",
    )
    merchants_file: str = Field(
        default="var/pricing/merchants.json",
        description="Merchant and cooperative accounts: ids, limits, hashed tokens",
    )
    reserve_fen_per_kg: dict[Grade, int] = Field(
        default={
            Grade.EXTRA: 600,
            Grade.CLASS_I: 450,
            Grade.CLASS_II: 300,
            Grade.OUT_OF_GRADE: 100,
        },
        description="The cooperative's floor price per grade, fen per kg",
    )
