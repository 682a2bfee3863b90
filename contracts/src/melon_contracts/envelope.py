"""The envelope every message on a Melon Hall topic carries."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

CORRELATION_ID_MAX_CHARS = 64
"""Lot ids, bid ids and plates all fit; so does a dead letter's ``<topic>:<partition>:<offset>``."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every event and command.

    ``correlation_id`` is the lot id or bid id the message is about, so one lot can be traced from
    the scale to the truck by grepping every topic for it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: int = Field(default=1, ge=1)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str = Field(min_length=1, max_length=CORRELATION_ID_MAX_CHARS)

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)
