"""The hall's calendar: its clock, its trading day and where a day ends.

Minqin keeps China Standard Time, UTC+8 all year with no daylight saving, so a fixed offset is
exact and needs no time-zone database. The trading day is the hall's calendar day: it starts and
ends at midnight on this clock. Every service and page that names a day or prints a time uses
these, so that a ticket, a board line and a dispatch note agree on what "today" is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

HALL_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The hall's clock: a fixed UTC+8 (Asia/Shanghai)."""

HALL_TIME_ZONE_NAME = "Asia/Shanghai"
"""The IANA name of the hall's zone, for browsers and tools that want one."""


def _aware(at: datetime, what: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{at} has no time zone; {what} needs one")
    return at


def trading_day(at: datetime) -> date:
    """The hall's calendar day an instant falls on."""
    return _aware(at, "the hall's day").astimezone(HALL_TIME).date()


def start_of_day(day: date) -> datetime:
    """The instant a trading day begins (midnight in the hall), in UTC."""
    return datetime.combine(day, time(0), HALL_TIME).astimezone(UTC)


def end_of_trading_day(at: datetime) -> datetime:
    """The instant the trading day of ``at`` ends (the next midnight in the hall), in UTC."""
    return start_of_day(trading_day(at) + timedelta(days=1))


def hall_time_text(at: datetime, *, seconds: bool = True) -> str:
    """An instant as people in the hall read it: ``2026-07-18 09:30:05`` on the hall's clock.

    A naive instant is taken as UTC, which is what the services' clocks give.
    """
    moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return moment.astimezone(HALL_TIME).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )
