"""The grading rule: a lot's grade follows from the mean of its refractometer readings.

A profile is data (thresholds, best grade first), not code, so profiles can later be loaded from
files and versioned without touching the rule. The mean is rounded half up to 0.1 °Brix, the
refractometer's resolution, and the grade is decided on that rounded mean so the reason a farmer
reads ("mean Brix 12.0 ...") never contradicts the grade they got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from melon_contracts.reference import Grade

BRIX_STEP = Decimal("0.1")


@dataclass(frozen=True)
class Threshold:
    """The least mean Brix a lot needs for ``grade``."""

    grade: Grade
    min_brix: Decimal


@dataclass(frozen=True)
class Grading:
    """The grade a profile gave, with the measurements and words behind it."""

    grade: Grade
    profile_id: str
    profile_version: int
    brix_mean: float
    brix_samples: int
    reason: str


@dataclass(frozen=True)
class GradingProfile:
    """A named, versioned set of Brix thresholds; a lot below all of them gets ``fallback``."""

    profile_id: str
    version: int
    thresholds: tuple[Threshold, ...]
    fallback: Grade = Grade.OUT_OF_GRADE

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"profile {self.profile_id} has version {self.version}; must be ≥ 1")
        if not self.thresholds:
            raise ValueError(f"profile {self.profile_id} has no thresholds")
        minima = [threshold.min_brix for threshold in self.thresholds]
        if any(better <= worse for better, worse in pairwise(minima)):
            raise ValueError(f"profile {self.profile_id}: thresholds must fall strictly")
        grades = [threshold.grade for threshold in self.thresholds] + [self.fallback]
        if len(set(grades)) != len(grades):
            raise ValueError(f"profile {self.profile_id} names a grade twice")

    def grade(self, brix: Sequence[float]) -> Grading:
        if not brix:
            raise ValueError("cannot grade a lot without Brix readings")
        mean = mean_brix(brix)
        samples = len(brix)
        measured = f"mean Brix {mean} over {samples} fruit{'s' if samples != 1 else ''}"
        for index, threshold in enumerate(self.thresholds):
            if mean >= threshold.min_brix:
                reason = f"{measured}; {threshold.grade.zh} needs ≥ {threshold.min_brix}"
                if index > 0:
                    better = self.thresholds[index - 1]
                    reason += f", {better.grade.zh} needs ≥ {better.min_brix}"
                return self._grading(threshold.grade, mean, samples, reason)
        lowest = self.thresholds[-1]
        reason = f"{measured}; {lowest.grade.zh} needs ≥ {lowest.min_brix}, so {self.fallback.zh}"
        return self._grading(self.fallback, mean, samples, reason)

    def _grading(self, grade: Grade, mean: Decimal, samples: int, reason: str) -> Grading:
        return Grading(
            grade=grade,
            profile_id=self.profile_id,
            profile_version=self.version,
            brix_mean=float(mean),
            brix_samples=samples,
            reason=reason,
        )


def mean_brix(brix: Sequence[float]) -> Decimal:
    """The mean reading rounded half up to 0.1; summed in decimal so 12.05 rounds to 12.1."""
    total = sum((Decimal(repr(reading)) for reading in brix), Decimal(0))
    return (total / len(brix)).quantize(BRIX_STEP, rounding=ROUND_HALF_UP)


SKELETON_PROFILE = GradingProfile(
    profile_id="minqin-honeydew-skeleton",
    version=1,
    thresholds=(
        Threshold(Grade.EXTRA, Decimal("14.0")),
        Threshold(Grade.CLASS_I, Decimal("12.0")),
        Threshold(Grade.CLASS_II, Decimal("10.0")),
    ),
)
"""The walking skeleton's profile for Minqin honeydew melons."""
