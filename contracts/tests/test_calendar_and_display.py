"""The hall's calendar, its unit conversions and how weights and money read."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from melon_contracts.calendar import (
    end_of_trading_day,
    hall_time_text,
    start_of_day,
    trading_day,
)
from melon_contracts.display import (
    kg_at_division,
    kg_exact,
    kg_grouped,
    kg_rounded,
    kg_text,
    yuan_grouped,
    yuan_text,
)
from melon_contracts.units import UnitError, kg_to_g, yuan_to_fen


def test_the_trading_day_turns_at_midnight_in_the_hall_not_in_utc() -> None:
    assert trading_day(datetime(2026, 7, 18, 15, 59, 59, tzinfo=UTC)) == date(2026, 7, 18)
    assert trading_day(datetime(2026, 7, 18, 16, 0, 0, tzinfo=UTC)) == date(2026, 7, 19)


def test_a_day_starts_and_ends_at_the_halls_midnight() -> None:
    assert start_of_day(date(2026, 7, 19)) == datetime(2026, 7, 18, 16, tzinfo=UTC)
    assert end_of_trading_day(datetime(2026, 7, 18, 1, tzinfo=UTC)) == datetime(
        2026, 7, 18, 16, tzinfo=UTC
    )


def test_an_instant_without_a_zone_has_no_trading_day() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        trading_day(datetime(2026, 7, 18, 12))


def test_times_read_on_the_halls_clock_and_naive_ones_count_as_utc() -> None:
    assert hall_time_text(datetime(2026, 7, 18, 1, 30, 5, tzinfo=UTC)) == "2026-07-18 09:30:05"
    assert hall_time_text(datetime(2026, 7, 18, 1, 30, 5)) == "2026-07-18 09:30:05"
    assert hall_time_text(datetime(2026, 7, 18, 1, 30, tzinfo=UTC), seconds=False) == (
        "2026-07-18 09:30"
    )


@pytest.mark.parametrize("typed", ["-0.001", "-1", -5])
def test_no_weight_or_price_a_person_types_is_below_zero(typed: str | int) -> None:
    with pytest.raises(UnitError, match="below zero"):
        kg_to_g(typed)
    with pytest.raises(UnitError, match="below zero"):
        yuan_to_fen(typed)


def test_zero_and_exact_amounts_convert() -> None:
    assert kg_to_g("0") == 0
    assert kg_to_g("12.345") == 12_345
    assert yuan_to_fen("4.60") == 460


@pytest.mark.parametrize(
    ("grams", "exact", "grouped", "rounded", "ticket"),
    [
        (1_250_500, "1250.5", "1,250.5", "1,250.5", "1250.50 kg"),
        (1_000, "1", "1", "1.0", "1.00 kg"),
        (612_400, "612.4", "612.4", "612.4", "612.40 kg"),
        (12_345, "12.345", "12.345", "12.3", "12.345 kg"),
        (0, "0", "0", "0.0", "0.00 kg"),
        (166_667, "166.667", "166.667", "166.7", "166.667 kg"),
    ],
)
def test_weights_read_exactly_for_machines_and_rounded_for_people(
    grams: int, exact: str, grouped: str, rounded: str, ticket: str
) -> None:
    assert kg_exact(grams) == exact
    assert kg_grouped(grams) == grouped
    assert kg_rounded(grams) == rounded
    assert kg_text(grams) == ticket


def test_a_weight_reads_to_the_scales_resolution() -> None:
    assert kg_at_division(464_000, 200) == "464.0"
    assert kg_at_division(18_460_000, 20_000) == "18460"
    assert kg_at_division(12_345, 5) == "12.345"
    with pytest.raises(ValueError, match="positive"):
        kg_at_division(1_000, 0)


def test_money_reads_in_yuan_with_both_decimals() -> None:
    assert yuan_text(123_456) == "1234.56"
    assert yuan_text(460) == "4.60"
    assert yuan_grouped(123_456) == "1,234.56"
