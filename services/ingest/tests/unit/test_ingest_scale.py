"""Stable-weight detection: which readings make a weight that may go on a ticket."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from ingest.domain.errors import InvalidScaleConfig, ReadingOutOfOrder
from ingest.domain.scale import (
    Refusal,
    ScaleConfig,
    ScaleStatus,
    StabilityDetector,
    StableWeight,
    WeighingRefused,
    format_kg,
    round_to_division,
)

# A 600 kg platform scale: d = 200 g (3000 divisions), Min = 20 d, readings every 100 ms.
PLATFORM = ScaleConfig(division_g=200, max_g=600_000, min_load_g=4_000)
STEP_MS = 100

Reading = tuple[int, int | None] | tuple[int, int | None, dict[str, bool]]


def steady(value_g: int | None, start_ms: int, end_ms: int, **flags: bool) -> list[Reading]:
    """The same reading every 100 ms from ``start_ms`` to ``end_ms`` inclusive."""
    return [(t, value_g, flags) for t in range(start_ms, end_ms + 1, STEP_MS)]


def feed(detector: StabilityDetector, readings: Iterable[Reading]) -> None:
    for reading in readings:
        at_ms, value_g = reading[0], reading[1]
        flags: dict[str, Any] = reading[2] if len(reading) == 3 else {}
        detector.observe(value_g, at_ms, **flags)


def detector_after(
    readings: Iterable[Reading], config: ScaleConfig = PLATFORM
) -> StabilityDetector:
    detector = StabilityDetector(config)
    feed(detector, readings)
    return detector


def loaded(value_g: int, start_ms: int = 0, settle_ms: int = 1000) -> list[Reading]:
    """An empty scale at rest for a second, then a load placed at ``start_ms + 1000``."""
    return [
        *steady(0, start_ms, start_ms + 900),
        *steady(value_g, start_ms + 1000, start_ms + 1000 + settle_ms),
    ]


@pytest.mark.parametrize(
    ("value_g", "division_g", "rounded"),
    [
        pytest.param(0, 200, 0, id="zero"),
        pytest.param(99, 200, 0, id="below-half-down"),
        pytest.param(100, 200, 200, id="half-away-from-zero-up"),
        pytest.param(-99, 200, 0, id="negative-below-half"),
        pytest.param(-100, 200, -200, id="negative-half-away-from-zero"),
        pytest.param(299, 200, 200, id="just-below-half-of-second-step"),
        pytest.param(300, 200, 400, id="half-of-second-step-up"),
        pytest.param(-300, 200, -400, id="negative-half-of-second-step"),
        pytest.param(612_345, 10, 612_350, id="five-grams-on-d10-up"),
        pytest.param(612_344, 10, 612_340, id="four-grams-on-d10-down"),
        pytest.param(-5, 10, -10, id="negative-five-on-d10"),
        pytest.param(7, 1, 7, id="d1-keeps-grams"),
        pytest.param(400, 200, 400, id="exact-multiple"),
        pytest.param(25, 50, 50, id="odd-half-d50"),
        pytest.param(3, 5, 5, id="d5-up-from-2.5"),
        pytest.param(2, 5, 0, id="d5-down"),
    ],
)
def test_weight_is_rounded_to_the_division_half_away_from_zero(
    value_g: int, division_g: int, rounded: int
) -> None:
    assert round_to_division(value_g, division_g) == rounded


def test_rounding_to_no_division_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 g"):
        round_to_division(100, 0)


@pytest.mark.parametrize(
    ("grams", "text"),
    [
        pytest.param(612_400, "612.40 kg", id="tens-of-grams"),
        pytest.param(600_000, "600.00 kg", id="whole-kg"),
        pytest.param(1_605, "1.605 kg", id="single-grams"),
        pytest.param(-1_000, "-1.00 kg", id="negative"),
        pytest.param(0, "0.00 kg", id="zero"),
    ],
)
def test_weights_are_shown_in_kg_without_losing_grams(grams: int, text: str) -> None:
    assert format_kg(grams) == text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"division_g": 0}, "division d must be at least 1 g", id="no-division"),
        pytest.param({"max_g": 600_100}, "multiple of d", id="max-not-multiple-of-d"),
        pytest.param({"max_g": 100}, "at least one division", id="max-below-d"),
        pytest.param({"min_load_g": 600_000}, "below Max", id="min-equals-max"),
        pytest.param({"min_load_g": 0}, "Min must be at least 1 g", id="min-zero"),
        pytest.param({"motion_band_d": -1}, "motion band", id="negative-band"),
        pytest.param({"window_ms": 0}, "stability window", id="no-window"),
        pytest.param({"stale_ms": 0}, "offline limit", id="no-offline-limit"),
        pytest.param({"zero_band_g": 4_000}, "zero band ±4000 g must be below Min", id="zero-band"),
        pytest.param({"zero_band_g": -1}, "zero band must be", id="negative-zero-band"),
        pytest.param({"division_g": True}, "whole number", id="bool-division"),
        pytest.param({"window_ms": 1.5}, "whole number", id="float-window"),
    ],
)
def test_contradicting_scale_parameters_are_refused(changes: dict[str, Any], message: str) -> None:
    fields = {"division_g": 200, "max_g": 600_000, "min_load_g": 4_000, **changes}
    with pytest.raises(InvalidScaleConfig, match=message):
        ScaleConfig(**fields)


@pytest.mark.parametrize(
    ("division_g", "zero_band_g", "resolved"),
    [
        pytest.param(200, None, 100, id="half-of-even-d"),
        pytest.param(5, None, 3, id="half-of-odd-d-rounded-up"),
        pytest.param(1, None, 1, id="d1"),
        pytest.param(200, 0, 0, id="explicit-zero"),
        pytest.param(200, 300, 300, id="explicit-wider"),
    ],
)
def test_zero_band_defaults_to_half_a_division(
    division_g: int, zero_band_g: int | None, resolved: int
) -> None:
    config = ScaleConfig(
        division_g=division_g, max_g=600_000, min_load_g=4_000, zero_band_g=zero_band_g
    )
    assert config.zero_band_g == config.zero_tolerance_g == resolved


def test_config_reports_its_divisions_and_band() -> None:
    assert (PLATFORM.divisions, PLATFORM.motion_band_g) == (3_000, 200)


@pytest.mark.parametrize(
    ("readings", "now_ms", "config", "status", "value_g"),
    [
        pytest.param([], 0, PLATFORM, ScaleStatus.OFFLINE, None, id="no-reading-is-offline"),
        pytest.param(
            steady(300_000, 0, 1000), 1000, PLATFORM, ScaleStatus.STABLE, 300_000, id="full-window"
        ),
        pytest.param(
            steady(300_000, 0, 900), 900, PLATFORM, ScaleStatus.MOTION, 300_000, id="window-short"
        ),
        pytest.param(
            [(0, 300_000)], 1000, PLATFORM, ScaleStatus.STABLE, 300_000, id="held-reading-covers"
        ),
        pytest.param(
            [(0, 300_000)], 999, PLATFORM, ScaleStatus.MOTION, 300_000, id="held-1ms-short"
        ),
        pytest.param(
            [(t, 300_000 + 200 * (t // 100 % 2)) for t in range(0, 1001, 100)],
            1000,
            PLATFORM,
            ScaleStatus.STABLE,
            300_000,
            id="one-d-band-edge-inside",
        ),
        pytest.param(
            [*steady(300_000, 0, 500), (600, 300_400), *steady(300_000, 700, 1600)],
            1600,
            PLATFORM,
            ScaleStatus.MOTION,
            300_000,
            id="two-d-in-window-is-motion",
        ),
        pytest.param(
            [(0, 290_000), *steady(300_000, 100, 1100)],
            1100,
            PLATFORM,
            ScaleStatus.STABLE,
            300_000,
            id="motion-just-left-window",
        ),
        pytest.param(
            [(0, 290_000), *steady(300_000, 100, 1000)],
            1099,
            PLATFORM,
            ScaleStatus.MOTION,
            300_000,
            id="motion-still-at-window-start",
        ),
        pytest.param(
            [(t, 300_099 if t % 200 else 299_901) for t in range(0, 1001, 100)],
            1000,
            PLATFORM,
            ScaleStatus.STABLE,
            300_000,
            id="raw-noise-rounds-away",
        ),
        pytest.param(
            [(t, 300_000 + 200 * (t // 100 % 2)) for t in range(0, 1001, 100)],
            1000,
            replace(PLATFORM, motion_band_d=0),
            ScaleStatus.MOTION,
            300_000,
            id="band-zero-allows-no-step",
        ),
        pytest.param(
            steady(None, 0, 1000, overload=True),
            1000,
            PLATFORM,
            ScaleStatus.OVERLOAD,
            None,
            id="indicator-overload",
        ),
        pytest.param(
            steady(600_200, 0, 1000), 1000, PLATFORM, ScaleStatus.OVERLOAD, None, id="above-max"
        ),
        pytest.param(
            steady(600_000, 0, 1000), 1000, PLATFORM, ScaleStatus.STABLE, 600_000, id="at-max"
        ),
        pytest.param(
            steady(None, 0, 1000, underload=True),
            1000,
            PLATFORM,
            ScaleStatus.UNDERLOAD,
            None,
            id="indicator-underload",
        ),
        pytest.param(
            [*steady(300_000, 0, 900), (1000, None)],
            1000,
            PLATFORM,
            ScaleStatus.MOTION,
            None,
            id="frame-without-number",
        ),
        pytest.param(steady(0, 0, 1000), 1000, PLATFORM, ScaleStatus.EMPTY, 0, id="empty"),
        pytest.param(
            steady(100, 0, 1000), 1000, PLATFORM, ScaleStatus.ZERO_DRIFT, 200, id="half-d-is-drift"
        ),
        pytest.param(
            steady(99, 0, 1000), 1000, PLATFORM, ScaleStatus.EMPTY, 0, id="inside-zero-band"
        ),
        pytest.param(
            steady(0, 0, 1000),
            1000,
            replace(PLATFORM, zero_band_g=0),
            ScaleStatus.EMPTY,
            0,
            id="zero-band-zero-still-empty-at-0",
        ),
        pytest.param(
            steady(400, 0, 1000), 1000, PLATFORM, ScaleStatus.ZERO_DRIFT, 400, id="drift-up"
        ),
        pytest.param(
            steady(-400, 0, 1000), 1000, PLATFORM, ScaleStatus.ZERO_DRIFT, -400, id="drift-down"
        ),
        pytest.param(
            steady(3_800, 0, 1000),
            1000,
            PLATFORM,
            ScaleStatus.ZERO_DRIFT,
            3_800,
            id="below-min-is-not-a-load",
        ),
        pytest.param(
            steady(4_000, 0, 1000), 1000, PLATFORM, ScaleStatus.STABLE, 4_000, id="min-is-a-load"
        ),
        pytest.param(
            steady(300_000, 0, 1000), 3000, PLATFORM, ScaleStatus.STABLE, 300_000, id="2000ms-ok"
        ),
        pytest.param(
            steady(300_000, 0, 1000), 3001, PLATFORM, ScaleStatus.OFFLINE, None, id="stale"
        ),
    ],
)
def test_state_follows_the_readings(
    readings: list[Reading],
    now_ms: int,
    config: ScaleConfig,
    status: ScaleStatus,
    value_g: int | None,
) -> None:
    # Given a scale's readings, When its state is asked at now_ms
    state = detector_after(readings, config).state(now_ms)
    # Then it shows the right status and rounded value
    assert (state.status, state.value_g) == (status, value_g)
    assert state.at_ms == now_ms
    assert state.at_rest == (
        status in {ScaleStatus.STABLE, ScaleStatus.EMPTY, ScaleStatus.ZERO_DRIFT}
    )
    assert (state.stable_since_ms is not None) == state.at_rest


def test_observe_returns_the_state_at_the_reading() -> None:
    detector = detector_after(steady(300_000, 0, 900))
    state = detector.observe(300_000, 1000)
    assert state == detector.state(1000)
    assert (state.status, state.stable_since_ms) == (ScaleStatus.STABLE, 1000)


def test_stable_weight_carries_its_evidence() -> None:
    # Given an empty scale at rest, then a load put on at 1000 ms that swings and settles at 1200
    readings = [*steady(0, 0, 900), (1000, 150_000), (1100, 290_000), *steady(300_000, 1200, 2100)]
    detector = detector_after(readings)
    assert detector.state(2199).status is ScaleStatus.MOTION
    detector.observe(300_000, 2200)
    # When the operator takes the weight
    weight = detector.take(2200)
    # Then it is the settled value, stable since the window filled, counted from the load's arrival
    assert weight == StableWeight(
        value_g=300_000, stable_since_ms=2200, time_to_stable_ms=1200, readings_in_window=11
    )
    assert detector.state(2200).taken is True


def test_stable_since_stays_while_the_load_rests() -> None:
    detector = detector_after(steady(300_000, 0, 3000))
    assert detector.state(3000).stable_since_ms == 1000
    assert detector.take(3000).stable_since_ms == 1000


def _refusal_cases() -> list[Any]:
    drifted_then_loaded = [*steady(400, 0, 1000), *steady(300_000, 1100, 2100)]
    return [
        pytest.param([], 0, Refusal.OFFLINE, "offline: no reading from the scale yet", id="none"),
        pytest.param(
            steady(300_000, 0, 1000),
            3001,
            Refusal.OFFLINE,
            "offline: no reading for 2001 ms (limit 2000 ms)",
            id="stale",
        ),
        pytest.param(
            steady(None, 0, 1000, overload=True),
            1000,
            Refusal.OVERLOAD,
            "overload: the indicator reports overload (Max 600.00 kg)",
            id="indicator-overload",
        ),
        pytest.param(
            steady(612_400, 0, 1000),
            1000,
            Refusal.OVERLOAD,
            "overload: 612.40 kg is above Max 600.00 kg",
            id="above-max-without-flag",
        ),
        pytest.param(
            [*steady(300_000, 0, 900), (1000, 600_200)],
            1000,
            Refusal.OVERLOAD,
            "overload: 600.20 kg is above Max 600.00 kg",
            id="one-d-above-max-in-motion",
        ),
        pytest.param(
            steady(None, 0, 1000, underload=True),
            1000,
            Refusal.NEGATIVE,
            "negative: the indicator reports underload (below zero)",
            id="underload",
        ),
        pytest.param(
            steady(-1_000, 0, 1000),
            1000,
            Refusal.NEGATIVE,
            "negative: -1.00 kg is below zero",
            id="negative-value",
        ),
        pytest.param(
            [*steady(0, 0, 900), *steady(300_000, 1000, 1900)],
            1900,
            Refusal.UNSTABLE,
            "unstable: 300.00 kg has not held within ±0.20 kg for 1000 ms",
            id="still-settling",
        ),
        pytest.param(
            [*steady(300_000, 0, 900), (1000, None)],
            1000,
            Refusal.UNSTABLE,
            "unstable: the reading has not held within ±0.20 kg for 1000 ms",
            id="no-number",
        ),
        pytest.param(
            steady(3_800, 0, 1000),
            1000,
            Refusal.BELOW_MINIMUM,
            "below minimum: 3.80 kg is below Min 4.00 kg",
            id="below-min",
        ),
        pytest.param(
            drifted_then_loaded,
            2100,
            Refusal.ZERO_DRIFT,
            "zero drift: the empty scale last read 0.40 kg, outside the zero band ±0.10 kg; "
            "unload and zero the scale",
            id="loaded-on-drifted-zero",
        ),
    ]


@pytest.mark.parametrize(("readings", "now_ms", "reason", "message"), _refusal_cases())
def test_weight_is_refused_with_the_numbers(
    readings: list[Reading], now_ms: int, reason: Refusal, message: str
) -> None:
    # Given a scale in a state no legal weight can be taken from
    detector = detector_after(readings)
    # When the operator takes the weight, Then it is refused with the reason and the numbers
    with pytest.raises(WeighingRefused) as refused:
        detector.take(now_ms)
    assert refused.value.reason is reason
    assert str(refused.value) == refused.value.message == message
    assert refused.value.message_zh.startswith(reason.zh + "：")


def test_refusal_reads_in_chinese_for_the_operator() -> None:
    detector = detector_after(steady(612_400, 0, 1000))
    with pytest.raises(WeighingRefused) as refused:
        detector.take(1000)
    assert refused.value.message_zh == "超载：612.40 kg 超过最大秤量 600.00 kg"


@pytest.mark.parametrize(
    ("reason", "zh", "en"),
    [
        (Refusal.UNSTABLE, "不稳定", "unstable"),
        (Refusal.OVERLOAD, "超载", "overload"),
        (Refusal.BELOW_MINIMUM, "低于最小秤量", "below minimum"),
        (Refusal.NEGATIVE, "负值", "negative"),
        (Refusal.ZERO_DRIFT, "零点漂移", "zero drift"),
        (Refusal.NOT_RETURNED_TO_ZERO, "未回零", "not returned to zero"),
        (Refusal.OFFLINE, "秤离线", "offline"),
    ],
)
def test_every_refusal_has_a_chinese_and_english_label(reason: Refusal, zh: str, en: str) -> None:
    assert (reason.zh, reason.en) == (zh, en)


def test_same_load_cannot_be_taken_twice() -> None:
    # Given a load that was taken
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    feed(detector, steady(300_000, 2100, 3000))
    # When the operator takes it again without unloading
    with pytest.raises(WeighingRefused) as refused:
        detector.take(3000)
    # Then the scale must first return to zero
    assert refused.value.reason is Refusal.NOT_RETURNED_TO_ZERO
    assert str(refused.value) == (
        "not returned to zero: 300.00 kg was already taken; unload until the scale returns to zero"
    )
    assert detector.state(3000).taken is True


def test_a_new_load_can_be_taken_after_the_scale_rested_on_zero() -> None:
    # Given a load taken, then the scale unloaded and at rest on zero for a window
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    feed(detector, steady(0, 2100, 3100))
    assert detector.state(3100).taken is False
    # When the next load (the same weight) settles
    feed(detector, steady(300_000, 3200, 4200))
    # Then it can be taken, timed from its own arrival
    assert detector.take(4200) == StableWeight(300_000, 4200, 1000, 11)


def test_passing_through_zero_without_resting_is_not_a_return_to_zero() -> None:
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    # The load comes off for half a window only, then a load goes back on
    feed(detector, [*steady(0, 2100, 2600), *steady(300_000, 2700, 3700)])
    with pytest.raises(WeighingRefused) as refused:
        detector.take(3700)
    assert refused.value.reason is Refusal.NOT_RETURNED_TO_ZERO


def test_an_indicator_that_only_sends_changes_returns_to_zero_in_silence() -> None:
    # Given a taken load, then a single zero reading and silence for longer than the window
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    feed(detector, [(2100, 0)])
    # When the next load's first reading arrives before the scale counts as offline
    feed(detector, steady(250_000, 3500, 4500))
    # Then the zero at rest in between counted as a return to zero
    assert detector.take(4500).value_g == 250_000


def test_partial_unload_onto_a_drifted_zero_keeps_the_take() -> None:
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    feed(detector, [*steady(2_000, 2100, 3100), *steady(300_000, 3200, 4200)])
    assert detector.state(3100).status is ScaleStatus.ZERO_DRIFT
    with pytest.raises(WeighingRefused) as refused:
        detector.take(4200)
    assert refused.value.reason is Refusal.ZERO_DRIFT


def test_zero_drift_clears_once_the_empty_scale_reads_zero_again() -> None:
    # Given an empty scale whose zero drifted to 0.4 kg
    detector = detector_after(steady(400, 0, 1000))
    assert detector.state(1000).status is ScaleStatus.ZERO_DRIFT
    # And a load put on it: the state says the zero is off, with the load's value
    feed(detector, steady(300_000, 1100, 2100))
    assert (detector.state(2100).status, detector.state(2100).value_g) == (
        ScaleStatus.ZERO_DRIFT,
        300_000,
    )
    # When the load comes off and the operator zeroes the indicator
    feed(detector, steady(0, 2200, 3200))
    assert detector.state(3200).status is ScaleStatus.EMPTY
    # Then the next load can be taken
    feed(detector, steady(300_000, 3300, 4300))
    assert detector.state(4300).status is ScaleStatus.STABLE
    assert detector.take(4300).value_g == 300_000


def test_a_gap_longer_than_the_offline_limit_restarts_the_window() -> None:
    # Given a load at rest, then silence longer than stale_ms
    detector = detector_after(steady(300_000, 0, 1000))
    assert detector.state(3001).status is ScaleStatus.OFFLINE
    # When readings resume with the same value, Then it must settle again
    assert detector.observe(300_000, 3100).status is ScaleStatus.MOTION
    feed(detector, steady(300_000, 3200, 4100))
    assert detector.state(4100).stable_since_ms == 4100


def test_going_offline_does_not_forget_a_take() -> None:
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    feed(detector, steady(300_000, 5000, 6000))
    with pytest.raises(WeighingRefused) as refused:
        detector.take(6000)
    assert refused.value.reason is Refusal.NOT_RETURNED_TO_ZERO


def test_reconfigure_makes_the_weight_settle_again_under_the_new_division() -> None:
    # Given a load at rest on a d = 200 g scale
    detector = detector_after(steady(300_050, 0, 1000))
    assert detector.state(1000).value_g == 300_000
    # When the scale's parameters change to d = 20 g
    finer = ScaleConfig(division_g=20, max_g=300_000 * 2, min_load_g=400)
    detector.reconfigure(finer)
    assert detector.config == finer
    # Then the weight is not stable until a new window passed, and is rounded to the new d
    assert detector.state(1000).status is ScaleStatus.MOTION
    feed(detector, steady(300_050, 1100, 2100))
    assert (detector.state(2100).status, detector.take(2100).value_g) == (
        ScaleStatus.STABLE,
        300_060,
    )


def test_reconfigure_does_not_forget_a_take() -> None:
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    detector.reconfigure(replace(PLATFORM, window_ms=500))
    feed(detector, steady(300_000, 2100, 2600))
    with pytest.raises(WeighingRefused) as refused:
        detector.take(2600)
    assert refused.value.reason is Refusal.NOT_RETURNED_TO_ZERO


def test_a_take_that_could_not_be_recorded_can_be_released() -> None:
    detector = detector_after(loaded(300_000))
    detector.take(2000)
    detector.release_take()
    assert detector.take(2000).value_g == 300_000


def test_require_zero_refuses_the_load_already_on_the_scale() -> None:
    detector = detector_after(loaded(300_000))
    detector.require_zero()
    with pytest.raises(WeighingRefused) as refused:
        detector.take(2000)
    assert refused.value.reason is Refusal.NOT_RETURNED_TO_ZERO


def test_readings_must_come_in_time_order() -> None:
    detector = detector_after(steady(300_000, 0, 1000))
    with pytest.raises(ReadingOutOfOrder, match="older than the last one at 1000 ms"):
        detector.observe(300_000, 999)


def test_a_query_before_the_latest_reading_is_read_at_that_reading() -> None:
    detector = detector_after(steady(300_000, 0, 1000))
    assert detector.state(500).at_ms == 1000
    assert detector.take(500).value_g == 300_000


def test_underload_resets_the_load_clock() -> None:
    readings = [
        *steady(300_000, 0, 400),
        (500, None, {"underload": True}),
        *steady(300_000, 600, 1600),
    ]
    assert detector_after(readings).take(1600).time_to_stable_ms == 1000


def test_overload_counts_as_a_load_arriving() -> None:
    readings = [*steady(0, 0, 400), (500, None, {"overload": True}), *steady(300_000, 600, 1600)]
    assert detector_after(readings).take(1600).time_to_stable_ms == 1100


def test_the_first_step_of_a_load_is_motion_not_a_drifted_zero() -> None:
    # Given an empty scale at rest on zero
    detector = detector_after(steady(0, 0, 1500))
    # When a load starts to arrive: one reading a division up, then the rest of the load
    state = detector.observe(200, 1600)
    assert state.status is ScaleStatus.MOTION
    feed(detector, steady(300_000, 1700, 3000))
    # Then the load is stable and can be taken; no zero drift was recorded on the way up
    assert detector.state(3000).status is ScaleStatus.STABLE
    assert detector.take(3000).value_g == 300_000


def test_a_zero_off_throughout_the_window_is_drift() -> None:
    detector = detector_after(steady(0, 0, 1500) + steady(600, 1600, 2800))
    assert detector.state(2800).status is ScaleStatus.ZERO_DRIFT
