"""The grading rule: a lot's grade follows from its mean Brix under a versioned profile."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ingest.domain.grading import SKELETON_PROFILE, GradingProfile, Threshold, mean_brix
from melon_contracts.reference import Grade


@pytest.mark.parametrize(
    ("brix", "grade"),
    [
        pytest.param((15.0, 14.0, 13.0), Grade.EXTRA, id="mean-14.0-is-extra"),
        pytest.param((13.9, 14.0), Grade.EXTRA, id="mean-13.95-rounds-up-to-extra"),
        pytest.param((13.9,), Grade.CLASS_I, id="mean-13.9-is-class-i"),
        pytest.param((12.0,), Grade.CLASS_I, id="mean-12.0-is-class-i"),
        pytest.param((11.9, 12.0, 11.9), Grade.CLASS_II, id="mean-11.93-is-class-ii"),
        pytest.param((10.0, 10.0), Grade.CLASS_II, id="mean-10.0-is-class-ii"),
        pytest.param((9.9, 10.0, 9.8), Grade.OUT_OF_GRADE, id="mean-9.9-is-out-of-grade"),
        pytest.param((0.0,), Grade.OUT_OF_GRADE, id="no-sugar-is-out-of-grade"),
    ],
)
def test_skeleton_profile_grades_lot_by_rounded_mean_brix(
    brix: tuple[float, ...], grade: Grade
) -> None:
    # Given a lot's Brix sample
    # When the skeleton profile grades it
    grading = SKELETON_PROFILE.grade(brix)
    # Then the grade follows the thresholds and names the profile it came from
    assert grading.grade is grade
    assert (grading.profile_id, grading.profile_version) == ("minqin-honeydew-skeleton", 1)
    assert grading.brix_samples == len(brix)


@pytest.mark.parametrize(
    ("brix", "reason"),
    [
        pytest.param(
            (13.0, 13.5, 13.2, 13.1, 13.2),
            "mean Brix 13.2 over 5 fruits; 一级 needs ≥ 12.0, 特级 needs ≥ 14.0",
            id="class-i-says-what-extra-needs",
        ),
        pytest.param(
            (14.5,), "mean Brix 14.5 over 1 fruit; 特级 needs ≥ 14.0", id="extra-single-fruit"
        ),
        pytest.param(
            (9.0, 9.2),
            "mean Brix 9.1 over 2 fruits; 二级 needs ≥ 10.0, so 等外",
            id="out-of-grade-says-the-lowest-bar",
        ),
    ],
)
def test_reason_lets_a_farmer_check_the_grade(brix: tuple[float, ...], reason: str) -> None:
    # Given a sample, When it is graded, Then the reason states the mean, count and threshold
    assert SKELETON_PROFILE.grade(brix).reason == reason


@pytest.mark.parametrize(
    ("brix", "mean"),
    [
        pytest.param((12.05,), Decimal("12.1"), id="half-rounds-up-in-decimal"),
        pytest.param((12.1, 12.2, 12.3), Decimal("12.2"), id="float-sum-error-does-not-leak"),
        pytest.param((12, 13), Decimal("12.5"), id="whole-readings"),
    ],
)
def test_mean_brix_is_rounded_half_up_to_a_tenth(brix: tuple[float, ...], mean: Decimal) -> None:
    assert mean_brix(brix) == mean


def test_grading_without_readings_is_refused() -> None:
    with pytest.raises(ValueError, match="without Brix readings"):
        SKELETON_PROFILE.grade(())


@pytest.mark.parametrize(
    ("version", "thresholds", "message"),
    [
        pytest.param(0, (Threshold(Grade.EXTRA, Decimal(14)),), "version", id="version-0"),
        pytest.param(1, (), "no thresholds", id="no-thresholds"),
        pytest.param(
            1,
            (Threshold(Grade.EXTRA, Decimal(12)), Threshold(Grade.CLASS_I, Decimal(12))),
            "fall strictly",
            id="thresholds-not-falling",
        ),
        pytest.param(
            1,
            (Threshold(Grade.EXTRA, Decimal(14)), Threshold(Grade.EXTRA, Decimal(12))),
            "grade twice",
            id="grade-named-twice",
        ),
    ],
)
def test_inconsistent_profile_is_refused_when_defined(
    version: int, thresholds: tuple[Threshold, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GradingProfile("bad", version, thresholds)


def test_profile_is_data_so_another_profile_grades_differently() -> None:
    # Given a stricter profile with a single bar
    strict = GradingProfile("strict", 2, (Threshold(Grade.CLASS_I, Decimal("15.0")),))
    # When it grades a lot the skeleton would call extra
    grading = strict.grade((14.5,))
    # Then the lot falls to the fallback grade under that profile's name and version
    assert (grading.grade, grading.profile_id, grading.profile_version) == (
        Grade.OUT_OF_GRADE,
        "strict",
        2,
    )
