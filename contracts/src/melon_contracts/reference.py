"""Reference data every service agrees on: grades, varieties, identifiers and book keys.

The variety list is data the cooperative extends each season; a code is the stable identifier and
the names are what people read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints


class Grade(StrEnum):
    """Quality classes a grading profile assigns: 特级 / 一级 / 二级 / 等外."""

    EXTRA = "extra"
    CLASS_I = "class_i"
    CLASS_II = "class_ii"
    OUT_OF_GRADE = "out_of_grade"

    @property
    def zh(self) -> str:
        return _GRADE_ZH[self]

    @property
    def en(self) -> str:
        return GRADE_EN[self]


_GRADE_ZH = {
    Grade.EXTRA: "特级",
    Grade.CLASS_I: "一级",
    Grade.CLASS_II: "二级",
    Grade.OUT_OF_GRADE: "等外",
}

GRADE_EN = {
    Grade.EXTRA: "Extra",
    Grade.CLASS_I: "Class I",
    Grade.CLASS_II: "Class II",
    Grade.OUT_OF_GRADE: "Out of grade",
}
"""Grade -> its English name, as the pages' English switch shows it."""

VARIETIES: dict[str, tuple[str, str]] = {
    "ganmibao": ("甘蜜宝", "Ganmibao"),
    "xizhoumi": ("西州蜜", "Xizhoumi"),
    "yujinxiang": ("玉金香", "Yujinxiang"),
}
"""Variety code -> (Chinese name, English name)."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
"""Ids people type or scan (lot tags, merchant ids): letters, digits and . _ : -"""

Plate = Annotated[str, StringConstraints(min_length=2, max_length=16, strip_whitespace=True)]
"""A vehicle plate as printed, e.g. 甘H12345."""


class UnknownVariety(ValueError):
    """A variety code that is not in the reference list."""


def check_variety(code: str) -> str:
    if code not in VARIETIES:
        known = ", ".join(sorted(VARIETIES))
        raise UnknownVariety(f"unknown variety {code!r}; known varieties: {known}")
    return code


def book_key(variety: str, grade: Grade) -> str:
    """The order book a lot or bid belongs to; also the Kafka key that co-partitions them."""
    return f"{variety}.{grade.value}"
